"""Join the parts of one camera frame that arrive on different topics (the image, its
MultiTaskResult, each dense result) by (stamp, frame_id), in bounded memory.

A frame is complete when every needed part has arrived. A slow or lost part must not pin
memory: at most max_pending frames wait (the oldest goes first), and a frame waiting longer
than timeout_s is given up. ROS-free: the visualization node feeds it, tests drive it.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pending:
    key: Hashable
    since: float  # when its first part arrived (the caller's clock)
    parts: dict[str, Any] = field(default_factory=dict)


class StampPairing:
    def __init__(self, needed: Iterable[str], max_pending: int, timeout_s: float) -> None:
        if max_pending < 1 or timeout_s <= 0:
            raise ValueError(f"max_pending must be >= 1 and timeout_s > 0, got {max_pending} and {timeout_s}")
        self.needed = frozenset(needed)
        self.max_pending, self.timeout_s = max_pending, timeout_s
        self._pending: OrderedDict[Hashable, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: Hashable, part: str, value: Any, now: float) -> tuple[Pending | None, list[Pending]]:
        """Store one part: (the frame, if this completed it; frames pushed out to stay bounded)."""
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = Pending(key, now)
        entry.parts[part] = value
        if self.needed <= entry.parts.keys():
            return self._pending.pop(key), []
        evicted = []
        while len(self._pending) > self.max_pending:
            evicted.append(self._pending.popitem(last=False)[1])
        return None, evicted

    def expire(self, now: float) -> list[Pending]:
        """Frames that waited longer than timeout_s, removed (oldest first)."""
        out = []
        while self._pending:
            first = next(iter(self._pending.values()))
            if now - first.since <= self.timeout_s:
                break
            out.append(self._pending.popitem(last=False)[1])
        return out

    def clear(self) -> list[Pending]:
        out = list(self._pending.values())
        self._pending.clear()
        return out
