"""Bounded bookkeeping: the one way the nodes remember anything per stream, per robot or per
publisher, so no sender can make them remember without end.

A BoundedTable maps keys to values and holds at most `max_size` of them, none older than
`max_age_s` since it was last touched (put, or get with touch): the least recently touched
go first. Fleets come and go, and a hostile publisher may invent a new key (a frame_id, a
topic) with every message; what it costs is capped here. Used by the batch scheduler
(active streams), temporal decoding (references per stream), the server's robots
(mtl_split_core.sources) and the nodes' rate-limited logs.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedTable(Generic[K, V]):
    """key -> value, at most max_size entries, each forgotten max_age_s after its last touch
    (None: never by age; 0: at once). `evicted` counts entries forgotten for size or age;
    `on_evict(key, value)` is told about each."""

    def __init__(self, max_size: int, max_age_s: float | None = None,
                 on_evict: Callable[[K, V], None] | None = None) -> None:
        if max_size < 1 or (max_age_s is not None and max_age_s < 0):
            raise ValueError(f"max_size must be >= 1 and max_age_s >= 0, got {max_size} and {max_age_s}")
        self.max_size, self.max_age_s, self.on_evict = max_size, max_age_s, on_evict
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()  # least recently touched first
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))

    def items(self) -> list[tuple[K, V]]:
        return [(k, v) for k, (_, v) in self._items.items()]

    def touched(self, key: K) -> float | None:
        """When key was last touched (None if not held)."""
        entry = self._items.get(key)
        return entry[0] if entry is not None else None

    def get(self, key: K, now: float | None = None, touch: bool = True) -> V | None:
        """The value (None if not held or expired by `now`); touching makes it the most recent."""
        now = time.monotonic() if now is None else now
        self.expire(now)
        entry = self._items.get(key)
        if entry is None:
            return None
        if touch:
            self._items[key] = (now, entry[1])
            self._items.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, now: float | None = None) -> None:
        """Hold value under key, touched now; the least recently touched go beyond max_size."""
        now = time.monotonic() if now is None else now
        self._items[key] = (now, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_size:
            old, (_, dropped) = self._items.popitem(last=False)
            self._evict(old, dropped)
        self.expire(now)

    def pop(self, key: K) -> V | None:
        entry = self._items.pop(key, None)
        return entry[1] if entry is not None else None

    def forget(self, where: Callable[[K, V], bool]) -> list[V]:
        """Drop every entry for which where(key, value) holds (a departed robot's streams); their values."""
        keys = [k for k, (_, v) in self._items.items() if where(k, v)]
        return [self._items.pop(k)[1] for k in keys]

    def clear(self) -> None:
        self._items.clear()

    def expire(self, now: float) -> None:
        """Forget what was last touched max_age_s or more before now."""
        if self.max_age_s is None:
            return
        while self._items:
            key, (touched, value) = next(iter(self._items.items()))
            if now - touched < self.max_age_s:
                return
            del self._items[key]
            self._evict(key, value)

    def _evict(self, key: K, value: V) -> None:
        self.evicted += 1
        if self.on_evict is not None:
            self.on_evict(key, value)
