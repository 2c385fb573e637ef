"""`mtl-split launch pipeline|edge|server|viz`: the launch files' nodes as plain processes, for
machines without launch_ros (PyPI ROS). Ctrl-C stops every node cleanly."""
from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

import yaml

from mtl_split_core import topics
from mtl_split_core.errors import MtlSplitError
from mtl_split_core.options import BACKENDS
from mtl_split_ros.params import NODES


def register(sub: argparse._SubParsersAction) -> None:
    from mtl_split_ros.launch_plan import LAUNCHES

    p = sub.add_parser("launch", help="start edge, server and/or visualization nodes (no launch_ros needed)",
                       description=__doc__)
    p.add_argument("launch", choices=LAUNCHES)
    p.add_argument("--bundle", required=True, help="model bundle directory from `mtl-split export`")
    p.add_argument("--camera-topic", default="",
                   help=f"the edge's camera (default: image_topics of config/edge.yaml or --params-file, "
                        f"{topics.DEFAULT_IMAGE_TOPIC})")
    p.add_argument("--namespace", default="", help="e.g. /robot_a")
    p.add_argument("--backend", default="", choices=BACKENDS,
                   help="the nodes' backend (default: their backend parameter, auto)")
    p.add_argument("--params-file", default="", help="YAML applied after config/<node>.yaml")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                   help="override a parameter, e.g. -p edge.dtype=int8 -p server.max_batch=4")
    p.add_argument("--viz", action="store_true",
                   help="also start the visualization node beside the edge: camera frames with the results drawn "
                        "on them on <namespace>/mtl_split/annotated (sensor_msgs/Image; RViz, Foxglove)")
    p.add_argument("-r", "--remap", action="append", default=[], metavar="FROM:=TO",
                   help="remap a topic of every node, as `ros2 run ... -r FROM:=TO` does")
    p.add_argument("--dds-profile", default="nodes", metavar="nodes|FILE|none",
                   help="Fast DDS profile of the nodes (default: config/fastdds/nodes.xml, for camera frames "
                        "up to 12 MP; none keeps your environment's)")
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """['edge.dtype=int8'] -> {'edge': {'dtype': 'int8'}} (values parsed as YAML)."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot or node not in NODES:
            raise MtlSplitError(f"bad -p {item!r}: use NODE.NAME=VALUE with NODE one of {', '.join(NODES)}")
        out.setdefault(node, {})[name] = yaml.safe_load(value) if value else ""
    return out


def parse_remaps(items: list[str]) -> dict[str, str]:
    """['/camera/image_raw:=/front/image'] -> {'/camera/image_raw': '/front/image'}."""
    out = {}
    for item in items:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise MtlSplitError(f"bad -r {item!r}: use FROM:=TO, e.g. -r /camera/image_raw:=/front/image_raw")
        out[src] = dst
    return out


def run(args: argparse.Namespace) -> int:
    from mtl_split_ros.launch_plan import LaunchArgs, plan

    from .processes import NodeProcesses

    bundle = Path(args.bundle)
    if not (bundle / "manifest.json").is_file():
        raise MtlSplitError(f"{bundle} is not a model bundle (no manifest.json); make one with `mtl-split export`")
    try:
        nodes = plan(args.launch, LaunchArgs(bundle=str(bundle.resolve()), camera_topic=args.camera_topic,
                                             namespace=args.namespace, backend=args.backend,
                                             params_file=args.params_file,
                                             overrides=parse_overrides(args.param),
                                             remaps=parse_remaps(args.remap), dds_profile=args.dds_profile,
                                             viz=args.viz))
    except ValueError as e:
        raise MtlSplitError(str(e)) from e
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    procs = NodeProcesses(nodes).start()
    profile = next(iter(dict(nodes[0].environment).values()), "the environment's")
    print(f"mtl-split launch {args.launch}: started {', '.join(procs.procs)} (DDS profile {profile}); "
          "Ctrl-C stops", flush=True)
    # Like ros2 launch: a node that exits is reported, and the others go on.
    while True:
        for label, code in procs.exited().items():
            why = "cleanly (e.g. a lifecycle shutdown transition)" if code == 0 else f"with status {code}"
            print(f"mtl-split launch: {label} exited {why}; see its log above", flush=True)
        if stopping or len(procs.dead()) == len(procs.procs):
            break
        time.sleep(0.2)
    codes = procs.stop()
    return 0 if all(c in (0, -signal.SIGINT) for c in codes.values()) else 1
