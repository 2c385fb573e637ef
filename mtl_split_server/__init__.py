"""The server node: SharedFeatures from many robots -> task heads -> results (see docs/nodes.md)."""
from __future__ import annotations


def main(args: list[str] | None = None) -> int:
    from .node import ServerNode  # rclpy only when the node really starts
    from mtl_split_ros.node import run

    return run(ServerNode, args)
