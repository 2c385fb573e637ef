"""Which nodes a launch starts, with which parameters: shared by the ROS launch files
(launch/*.launch.py, via launch_ros) and the `mtl-split launch` runner (plain processes).

No rclpy and no launch_ros here: both front ends turn the same PlannedNode list into their
own kind of process, so `ros2 launch` on a robot and `mtl-split launch` on a machine without
a ROS install start exactly the same thing.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .params import NODES, NodeSpec

LAUNCHES = ("pipeline", "edge", "server", "viz")
# The nodes of each launch; the visualization node joins pipeline and edge with viz=True.
LAUNCH_NODES = {"pipeline": ["edge", "server"], "edge": ["edge"], "server": ["server"], "viz": ["viz"]}
# Where Fast DDS reads its XML profile from: 3.x (Kilted on) reads FASTDDS_DEFAULT_PROFILES_FILE
# (and warns about the old name), 2.x (these distributions) FASTRTPS_DEFAULT_PROFILES_FILE.
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")
# The profiles in config/fastdds: "nodes" for the edge and server, "camera" for a process that
# publishes camera frames (see the comments in the XML files for what each sets and why).
DDS_PROFILES = ("nodes", "camera")
NO_DDS_PROFILE = "none"  # leave the environment's profile alone
# Parameters the YAML files in config/ carry (the rest are per-deployment launch arguments).
_NOT_IN_CONFIG = {"bundle"}


@dataclass(frozen=True)
class LaunchArgs:
    """The launch arguments every front end accepts. An empty camera_topic or backend is not
    passed to the nodes: config/<node>.yaml, then params_file, decide it (so a params_file
    listing several cameras is not overridden by a default camera_topic)."""

    bundle: str
    camera_topic: str = ""  # the edge's image_topics (empty: /camera/image_raw from config/edge.yaml)
    namespace: str = ""  # e.g. /robot_a; a missing leading slash is added
    backend: str = ""  # the nodes' backend (empty: auto from config/)
    params_file: str = ""  # extra YAML applied after config/<node>.yaml
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # node key -> {param: value}
    remaps: dict[str, str] = field(default_factory=dict)  # topic remappings of every node, from -> to
    dds_profile: str = "nodes"  # one of DDS_PROFILES, an XML file, or NO_DDS_PROFILE
    viz: bool = False  # also start the visualization node (mtl_split/annotated) beside the edge


@dataclass(frozen=True)
class PlannedNode:
    key: str  # "edge" | "server" | "viz"
    spec: NodeSpec
    namespace: str
    params_files: tuple[str, ...]
    parameters: dict[str, Any]
    remaps: tuple[tuple[str, str], ...] = ()
    environment: tuple[tuple[str, str], ...] = ()  # set in the node's process

    def ros_args(self) -> list[str]:
        args = ["--ros-args", "-r", f"__node:={self.spec.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace}"]
        for src, dst in self.remaps:
            args += ["-r", f"{src}:={dst}"]
        for f in self.params_files:
            args += ["--params-file", f]
        for name, value in self.parameters.items():
            args += ["-p", f"{name}:={_yaml_value(value)}"]
        return args

    def command(self, python: str = sys.executable) -> list[str]:
        """The process the runner starts: the node's module under this Python."""
        return [python, "-m", self.spec.module, *self.ros_args()]


def _yaml_value(value: Any) -> str:
    """A -p value as rcl parses it (YAML flow style: true, 3, [a, b], plain strings)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    return text.removesuffix("\n...").strip()


def config_dir() -> Path:
    """config/ of the source tree, else share/mtl_split/config of a ROS install."""
    source = Path(__file__).resolve().parent.parent / "config"
    if (source / "edge.yaml").is_file():  # not just any directory named config beside site-packages
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("mtl_split")) / "config"


def dds_profile_variable() -> str:
    """The variable this ROS distribution's Fast DDS reads its profile file from."""
    old = os.environ.get("ROS_DISTRO", "") in FAST_DDS_2_DISTROS
    return "FASTRTPS_DEFAULT_PROFILES_FILE" if old else "FASTDDS_DEFAULT_PROFILES_FILE"


def dds_profile_path(profile: str) -> Path:
    """The XML file of `profile`: a name in DDS_PROFILES (config/fastdds) or a file."""
    path = config_dir() / "fastdds" / f"{profile}.xml" if profile in DDS_PROFILES else Path(profile).expanduser()
    if not path.is_file():
        raise ValueError(f"DDS profile {profile!r}: no file {path} (use {', '.join(DDS_PROFILES)}, "
                         f"an XML file, or {NO_DDS_PROFILE})")
    return path.resolve()


def dds_environment(profile: str) -> dict[str, str]:
    """The environment that makes Fast DDS load `profile`; empty for NO_DDS_PROFILE."""
    if profile in ("", NO_DDS_PROFILE):
        return {}
    return {dds_profile_variable(): str(dds_profile_path(profile))}


def config_yaml(key: str) -> str:
    """config/<key>.yaml generated from params.py: every tunable parameter at its default."""
    spec = NODES[key]
    # An empty list has no type rcl can infer from YAML: leave those at the node's default.
    params = {p.name: p.default for p in spec.params if p.name not in _NOT_IN_CONFIG and p.default != []}
    header = (f"# {spec.name}: {spec.description}\n"
              f"# Generated from mtl_split_ros/params.py (python -m mtl_split_ros.launch_plan); "
              f"edit defaults there.\n# Copy this file, change what you need, pass it as params_file.\n")
    return header + yaml.safe_dump({"/**": {"ros__parameters": params}}, sort_keys=False)


_WHEN = {"live": "at once", "activate": "next activate", "configure": "next configure", "startup": "start-up (read-only)"}


def parameter_table(key: str) -> str:
    """The Markdown table of a node's parameters in docs/nodes.md, generated from params.py."""
    rows = ["| name | type | default | allowed | takes effect | description |", "|---|---|---|---|---|---|"]
    for p in NODES[key].params:
        allowed = ", ".join(f"`{c!r}`" for c in p.choices) if p.choices else (
            f"{_bound(p.low)} .. {_bound(p.high)}" if p.low is not None or p.high is not None else "")
        cells = [f"`{p.name}`", p.type, f"`{_yaml_value(p.default)}`", allowed, _WHEN[p.applies], p.description]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def _bound(x: float | None) -> str:
    return "" if x is None else f"{x:g}" if isinstance(x, float) else f"{x:,}".replace(",", " ")


def docs_with_tables(doc: str) -> str:
    """docs/nodes.md with its generated parameter tables (between the markers) brought up to date."""
    for key in NODES:
        start, end = f"<!-- parameters:{key} (generated) -->\n", f"<!-- /parameters:{key} -->"
        head, sep, rest = doc.partition(start)
        if not sep:
            raise ValueError(f"docs/nodes.md has no {start.strip()} marker")
        doc = head + start + parameter_table(key) + end + rest.partition(end)[2]
    return doc


def plan(launch: str, args: LaunchArgs) -> list[PlannedNode]:
    """The nodes of one launch ("pipeline" = edge + server in one namespace, + the
    visualization node with args.viz)."""
    if launch not in LAUNCHES:
        raise ValueError(f"unknown launch {launch!r}: use one of {', '.join(LAUNCHES)}")
    keys = LAUNCH_NODES[launch] + (["viz"] if args.viz and "edge" in LAUNCH_NODES[launch] else [])
    environment = tuple(dds_environment(args.dds_profile).items())
    nodes = []
    for key in keys:
        files = [str(config_dir() / f"{key}.yaml")] + ([args.params_file] if args.params_file else [])
        parameters: dict[str, Any] = {"bundle": args.bundle}
        if args.backend and "backend" in NODES[key].names:
            parameters["backend"] = args.backend
        if "image_topics" in NODES[key].names and args.camera_topic:
            parameters["image_topics"] = [args.camera_topic]
        parameters.update(args.overrides.get(key, {}))
        unknown = set(parameters) - set(NODES[key].names)
        if unknown:
            raise ValueError(f"{NODES[key].name} has no parameter(s) {', '.join(sorted(unknown))}")
        namespace = "/" + args.namespace.strip("/") if args.namespace.strip("/") else ""
        nodes.append(PlannedNode(key, NODES[key], namespace, tuple(files), parameters, tuple(args.remaps.items()),
                                 environment))
    return nodes


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else config_dir()
    for key in NODES:
        (out / f"{key}.yaml").write_text(config_yaml(key))
        print(f"wrote {out / f'{key}.yaml'}")
    docs = Path(__file__).resolve().parent.parent / "docs" / "nodes.md"
    if docs.is_file():
        docs.write_text(docs_with_tables(docs.read_text()))
        print(f"wrote the parameter tables of {docs}")
