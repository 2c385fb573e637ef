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


US_WRAP = 1 << 32  # SharedFeatures.sent_us: microseconds modulo 2^32 (wraps every 71.6 minutes)


def wrapped_us(ns: int) -> int:
    """A clock reading in ns -> the uint32 microseconds a SharedFeatures carries."""
    return (ns // 1000) % US_WRAP


def elapsed_ms(sent_us: int, now_ns: int) -> float:
    """now - sent for a wrapped microsecond stamp, in ms: exact while the true difference is
    within +-35 minutes (a robot clock ahead of the server's gives a negative value)."""
    diff = (wrapped_us(now_ns) - sent_us) % US_WRAP
    return (diff - US_WRAP if diff >= US_WRAP // 2 else diff) / 1000.0
