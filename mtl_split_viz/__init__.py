"""The visualization node: camera frames with the results drawn on them (see docs/nodes.md)."""
from __future__ import annotations


def main(args: list[str] | None = None) -> int:
    from .node import VizNode  # rclpy only when the node really starts
    from mtl_split_ros.node import run

    return run(VizNode, args)
