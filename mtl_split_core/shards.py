"""Which server of a fleet serves which robot: a stable hash of the robot's namespace.

N server processes started with shard 0/N, 1/N, ... N-1/N split the robots of one DDS graph
between them without talking to each other: each robot is served by exactly one (the
property test_shards checks), on any machine and across restarts (sha256, not Python's
salted hash()).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .topics import FEATURES

DEFAULT_SHARD = "0/1"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def serves(self, namespace: str) -> bool:
        return shard_of(namespace, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """'1/4' -> Shard(1, 4); ValueError saying what is wrong otherwise."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = -1
    if not sep or n < 1 or not 0 <= i < n:
        raise ValueError(f"shard must be index/count with 0 <= index < count, e.g. 0/2 and 1/2; got {text!r}")
    return Shard(i, n)


def shard_of(namespace: str, count: int) -> int:
    """The shard (0 .. count-1) that serves a robot namespace such as '/robot_a'."""
    digest = hashlib.sha256(namespace.rstrip("/").encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def robot_namespace(features_topic: str) -> str:
    """'/robot_a/mtl_split/features' -> '/robot_a' ('' for the root namespace)."""
    return features_topic.removesuffix("/" + FEATURES).rstrip("/")
