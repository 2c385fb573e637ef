"""One description of nodes and parameters serves the launch files, the runner and config/."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from mtl_split_core.errors import MtlSplitError
from mtl_split_ros.launch_plan import LaunchArgs, config_dir, config_yaml, docs_with_tables, plan
from mtl_split_ros.params import NODES
from mtl_split_tools.launch_command import parse_overrides, parse_remaps

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("key", sorted(NODES))
def test_config_yaml_is_generated_from_params(key):
    path = config_dir() / f"{key}.yaml"
    assert path.read_text() == config_yaml(key), (
        f"{path} is stale: run `.venv/bin/python -m mtl_split_ros.launch_plan` and commit it")
    params = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    assert set(params) <= set(NODES[key].names)


def test_docs_parameter_tables_are_generated_from_params():
    doc = (ROOT / "docs" / "nodes.md").read_text()
    assert doc == docs_with_tables(doc), (
        "the parameter tables in docs/nodes.md are stale: run `.venv/bin/python -m mtl_split_ros.launch_plan`")


def test_pipeline_plan_starts_edge_and_server_with_the_same_arguments():
    nodes = plan("pipeline", LaunchArgs(bundle="/b", camera_topic="/cam/front", namespace="/robot_a",
                                        backend="onnxruntime", remaps={"/tf": "/robot_a/tf"},
                                        overrides={"edge": {"dtype": "int8", "per_channel": True}}))
    edge, server = nodes
    assert [n.key for n in nodes] == ["edge", "server"]
    cmd = edge.command("python")
    assert cmd[:3] == ["python", "-m", "mtl_split_edge"]
    assert "__ns:=/robot_a" in cmd and "image_topics:=[/cam/front]" in cmd
    assert "dtype:=int8" in cmd and "per_channel:=true" in cmd and "backend:=onnxruntime" in cmd
    assert cmd.index("--params-file") < cmd.index("-p")  # overrides win over the YAML
    assert "/tf:=/robot_a/tf" in cmd and "/tf:=/robot_a/tf" in server.command("python")
    assert "bundle:=/b" in server.command("python") and "image_topics" not in " ".join(server.command("python"))


def test_unknown_parameters_and_launches_are_refused():
    with pytest.raises(ValueError, match="no parameter"):
        plan("edge", LaunchArgs(bundle="/b", overrides={"edge": {"dtypo": "int8"}}))
    with pytest.raises(ValueError, match="unknown launch"):
        plan("robot", LaunchArgs(bundle="/b"))
    assert parse_overrides(["edge.level=5", "server.max_batch=4", "edge.codec=zstd"]) == {
        "edge": {"level": 5, "codec": "zstd"}, "server": {"max_batch": 4}}
    with pytest.raises(MtlSplitError):
        parse_overrides(["level=5"])
    assert parse_remaps(["/camera/image_raw:=/front/image_raw"]) == {"/camera/image_raw": "/front/image_raw"}
    with pytest.raises(MtlSplitError, match="FROM:=TO"):
        parse_remaps(["/camera/image_raw=/front"])


@pytest.mark.parametrize("name", ["pipeline", "edge", "server"])
def test_launch_files_use_the_shared_plan(name):
    source = (ROOT / "launch" / f"{name}.launch.py").read_text()
    tree = ast.parse(source)
    funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert funcs == ["generate_launch_description"]
    assert f'describe("{name}")' in source


def test_nodes_get_the_shipped_dds_profile_unless_told_otherwise(tmp_path, monkeypatch):
    from xml.etree import ElementTree

    from mtl_split_ros.launch_plan import DDS_PROFILES, dds_environment

    monkeypatch.delenv("ROS_DISTRO", raising=False)
    for name in DDS_PROFILES:  # valid XML, read by Fast DDS 3 from FASTDDS_DEFAULT_PROFILES_FILE
        [(variable, path)] = dds_environment(name).items()
        assert variable == "FASTDDS_DEFAULT_PROFILES_FILE"
        root = ElementTree.parse(path).getroot()
        assert root.find(".//{http://www.eprosima.com}segment_size") is not None
    [edge, server] = plan("pipeline", LaunchArgs(bundle="/b"))
    assert dict(edge.environment) == dict(server.environment) == dds_environment("nodes")
    assert plan("edge", LaunchArgs(bundle="/b", dds_profile="none"))[0].environment == ()
    own = tmp_path / "mine.xml"
    own.write_text("<dds/>")
    assert dict(plan("edge", LaunchArgs(bundle="/b", dds_profile=str(own)))[0].environment) == {
        "FASTDDS_DEFAULT_PROFILES_FILE": str(own)}
    monkeypatch.setenv("ROS_DISTRO", "jazzy")  # Fast DDS 2 reads the older variable
    assert list(dds_environment("nodes")) == ["FASTRTPS_DEFAULT_PROFILES_FILE"]
    with pytest.raises(ValueError, match="DDS profile"):
        plan("edge", LaunchArgs(bundle="/b", dds_profile="/no/such.xml"))


# --- what `ros2 launch` does on a ROS install (launch_ros itself is not installable here) ------

def test_ros2_launch_nodes_for_namespace_camera_topic_and_params_file():
    """The exact launch_ros Node arguments: namespace made absolute, params_file after
    config/<node>.yaml, and only the launch arguments given passed as parameters."""
    from mtl_split_ros.launch_plan import dds_environment
    from mtl_split_ros.ros2_launch import ARGUMENTS, node_actions

    given = {"bundle": "/b", "namespace": "robot_a", "camera_topic": "/front/image_raw", "backend": "onnxruntime",
             "params_file": "/my/edge.yaml"}
    edge, server = node_actions("pipeline", given)
    assert edge["executable"] == "edge_node" and server["executable"] == "server_node"
    assert edge["additional_env"] == dds_environment("nodes")  # the shipped DDS profile by default
    assert edge["namespace"] == server["namespace"] == "/robot_a"
    assert edge["parameters"] == [str(config_dir() / "edge.yaml"), "/my/edge.yaml",
                                  {"bundle": "/b", "backend": "onnxruntime", "image_topics": ["/front/image_raw"]}]
    assert server["parameters"][-1] == {"bundle": "/b", "backend": "onnxruntime"}
    defaults = {name: default for name, (default, _) in ARGUMENTS.items()}
    [edge] = node_actions("edge", {**defaults, "bundle": "/b", "params_file": "/my/edge.yaml"})
    # Nothing overrides what config/ and the params_file say (e.g. a list of several cameras).
    assert edge["parameters"][-1] == {"bundle": "/b"} and edge["namespace"] is None
    with pytest.raises(ValueError, match="bundle:="):
        node_actions("server", defaults)
    assert set(ARGUMENTS) == {f for f in LaunchArgs.__dataclass_fields__ if f not in ("overrides", "remaps")}


def test_every_executable_a_launch_names_is_installed_and_starts_its_node():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for spec in NODES.values():
        script = ROOT / "nodes" / spec.executable
        assert f"nodes/{spec.executable}" in cmake and script.stat().st_mode & 0o111
        assert f"from {spec.module} import main" in script.read_text()


BLOCKED = ("numpy", "zstandard", "lz4", "cv2", "rclpy", "onnxruntime", "launch", "launch_ros")


@pytest.mark.parametrize("name", ["pipeline", "edge", "server"])
def test_launch_files_load_with_only_pyyaml(name):
    """`ros2 launch` runs the launch file in the system Python, outside the user's venv: it
    must import with PyYAML alone and reach launch_ros with every argument resolved."""
    import subprocess
    import sys

    script = f"""
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"blocked {{fullname}}", name=fullname)
sys.meta_path.insert(0, Block())
launch_file = runpy.run_path({str(ROOT / "launch" / f"{name}.launch.py")!r})
from mtl_split_ros.ros2_launch import node_actions
assert node_actions({name!r}, {{"bundle": "/b", "namespace": "/r"}})
try:
    launch_file["generate_launch_description"]()
except ModuleNotFoundError as e:
    print("reached", e.name)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and r.stdout.strip() == "reached launch", r.stdout + r.stderr


@pytest.mark.ros
def test_the_edge_subscribes_the_cameras_of_a_params_file(launcher, tiny_bundle, tmp_path):
    """Launch arguments left at their defaults do not override a params_file (here: two
    cameras); the real node under rcl's parameter parsing, started as `ros2 launch` would."""
    import time

    params_file = tmp_path / "cameras.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "image_topics": ["/pf/left/image_raw", "/pf/right/image_raw/compressed"]}}}))
    [node] = plan("edge", LaunchArgs(bundle=str(tiny_bundle), namespace="pf", params_file=str(params_file)))
    edge = launcher.add(node)
    end = time.monotonic() + 60
    while "active: cameras" not in edge.log() and edge.alive and time.monotonic() < end:
        time.sleep(0.2)
    assert ("active: cameras /pf/left/image_raw (Image), /pf/right/image_raw/compressed (CompressedImage)"
            in edge.log()), edge.log()
