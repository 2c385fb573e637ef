"""The edge node: camera images -> shared backbone -> SharedFeatures (see docs/nodes.md)."""
from __future__ import annotations


def main(args: list[str] | None = None) -> int:
    from mtl_split_core.heap import keep_large_buffers

    keep_large_buffers()  # before rclpy and Fast DDS allocate: camera frames reuse their pages
    from .node import EdgeNode  # rclpy only when the node really starts
    from mtl_split_ros.node import run

    return run(EdgeNode, args)
