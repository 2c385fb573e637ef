"""One description of nodes and parameters serves the launch files, the runner and config/."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from mtl_split_core.errors import MtlSplitError
from mtl_split_ros.launch_plan import LaunchArgs, config_dir, config_yaml, plan
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


def test_nodes_get_the_shipped_dds_profile_unless_told_otherwise(tmp_path):
    from xml.etree import ElementTree

    from mtl_split_ros.launch_plan import DDS_PROFILE_VARIABLES, DDS_PROFILES, dds_environment

    for name in DDS_PROFILES:  # valid XML that Fast DDS 2 and 3 read (both variables set)
        env = dds_environment(name)
        assert set(env) == set(DDS_PROFILE_VARIABLES) and len(set(env.values())) == 1
        root = ElementTree.parse(env[DDS_PROFILE_VARIABLES[0]]).getroot()
        assert root.find(".//{http://www.eprosima.com}segment_size") is not None
    [edge, server] = plan("pipeline", LaunchArgs(bundle="/b"))
    assert dict(edge.environment) == dict(server.environment) == dds_environment("nodes")
    assert plan("edge", LaunchArgs(bundle="/b", dds_profile="none"))[0].environment == ()
    own = tmp_path / "mine.xml"
    own.write_text("<dds/>")
    assert dict(plan("edge", LaunchArgs(bundle="/b", dds_profile=str(own)))[0].environment) == {
        v: str(own) for v in DDS_PROFILE_VARIABLES}
    with pytest.raises(ValueError, match="DDS profile"):
        plan("edge", LaunchArgs(bundle="/b", dds_profile="/no/such.xml"))
