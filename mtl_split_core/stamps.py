"""builtin_interfaces/Time <-> integer nanoseconds, duck-typed (rclpy and rosbags messages).

Integers, not rclpy.time.Time: matching results to frames needs exact, hashable keys, and
rclpy's Time refuses the negative stamps a robot with a broken clock may send.
"""
from __future__ import annotations

from typing import Any

NS_PER_S = 1_000_000_000


def to_ns(stamp: Any) -> int:
    return stamp.sec * NS_PER_S + stamp.nanosec


def set_ns(stamp: Any, ns: int) -> None:
    stamp.sec, stamp.nanosec = divmod(ns, NS_PER_S)
