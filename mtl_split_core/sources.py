"""Which robots a server serves, and when it lets one go: the server's fleet membership,
ROS-free (the node feeds it the graph and the frames it hears, and acts on its answers).

A robot is a SharedFeatures topic. The server serves
- the topics listed in `features_topics` ("pinned"): from activation on, whatever the graph says;
- with discovery on, every SharedFeatures topic that has a publisher in the graph;
both only where the robot's namespace hashes to this server's shard, and at most
`max_robots` at once (a flood of invented topics costs a bounded number of subscriptions).

A discovered robot is released (its subscriptions, result publishers and per-stream state
go) when its publishers left the graph, or when it sent nothing for `timeout_s` (a robot that
died without leaving: DDS keeps a killed process in the graph for its lease, 20 s by
default, or a publisher whose every frame the model filter refuses). A released silent robot
is served again when its publishers change (a restart) or after another `timeout_s` (to
look again). A pinned robot keeps its subscription; only its per-stream state is released.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .bounded import BoundedTable
from .shards import Shard, robot_namespace

LEFT = "left"  # its publishers left the graph
SILENT = "silent"  # nothing heard for timeout_s


@dataclass
class Robot:
    topic: str
    pinned: bool
    since: float  # when it was (last) taken on
    heard: float | None = None  # last frame
    publishers: frozenset[bytes] = frozenset()  # at the last look at the graph
    idle: bool = False  # pinned, and its per-stream state already released


@dataclass
class Changes:
    """What the node has to do after a look at the graph."""

    serve: list[str] = field(default_factory=list)
    release: list[tuple[str, str]] = field(default_factory=list)  # (topic, LEFT | SILENT): unsubscribe
    idle: list[tuple[str, str]] = field(default_factory=list)  # pinned (topic, why): per-stream state only
    refused: list[str] = field(default_factory=list)  # not taken on: max_robots reached
    other_shard: list[str] = field(default_factory=list)  # pinned topics another shard serves


class Membership:
    def __init__(self, shard: Shard, timeout_s: float, max_robots: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.shard, self.timeout_s, self.max_robots, self.clock = shard, timeout_s, max_robots, clock
        self.robots: dict[str, Robot] = {}
        # Silent robots let go while their publishers stayed: topic -> those publishers.
        self._dormant: BoundedTable[str, frozenset[bytes]] = BoundedTable(max(4 * max_robots, 64))

    def heard(self, robot: Robot, now: float) -> None:
        robot.heard = now
        robot.idle = False

    def serves(self, topic: str) -> bool:
        return self.shard.serves(robot_namespace(topic))

    def update(self, graph: Mapping[str, frozenset[bytes]], pinned: Iterable[str], discover: bool) -> Changes:
        """graph: every SharedFeatures topic with publishers -> their gids. Decides what to
        serve and what to let go; the caller does it (take_on / let_go)."""
        now = self.clock()
        out = Changes()
        for topic, robot in list(self.robots.items()):
            publishers = graph.get(topic, frozenset())
            quiet_since = robot.heard if robot.heard is not None else robot.since
            why = LEFT if not publishers else SILENT if now - quiet_since >= self.timeout_s else None
            if why is None or (robot.pinned and robot.idle):
                robot.publishers = publishers
                continue
            if robot.pinned:
                robot.idle = True
                out.idle.append((topic, why))
            else:
                out.release.append((topic, why))
                if why == SILENT:
                    self._dormant.put(topic, publishers, now)
            robot.publishers = publishers
        for topic in list(self._dormant):
            if topic not in graph:
                self._dormant.pop(topic)
        pinned = list(dict.fromkeys(pinned))
        candidates = pinned + ([t for t in graph if t not in pinned] if discover else [])
        leaving = {t for t, _ in out.release}
        for topic in candidates:
            if topic in self.robots and topic not in leaving:
                continue
            if not self.serves(topic):
                if topic in pinned:
                    out.other_shard.append(topic)
                continue
            if topic not in pinned and not self._awake(topic, graph.get(topic, frozenset()), now):
                continue
            if len(self.robots) - len(leaving) + len(out.serve) >= self.max_robots:
                out.refused.append(topic)
                continue
            out.serve.append(topic)
        return out

    def _awake(self, topic: str, publishers: frozenset[bytes], now: float) -> bool:
        """A robot let go for silence is looked at again when its publishers change or timeout_s on."""
        before = self._dormant.get(topic, now, touch=False)
        if before is None:
            return True
        released = self._dormant.touched(topic)
        if publishers != before or now - released >= self.timeout_s:
            self._dormant.pop(topic)
            return True
        return False

    def take_on(self, topic: str, pinned: bool, publishers: frozenset[bytes] = frozenset()) -> Robot:
        robot = Robot(topic, pinned, self.clock(), publishers=publishers)
        self.robots[topic] = robot
        return robot

    def let_go(self, topic: str) -> Robot | None:
        return self.robots.pop(topic, None)

    def clear(self) -> None:
        self.robots.clear()
        self._dormant.clear()
