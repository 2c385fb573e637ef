"""Which frames run through a model together, and when: the batching rules of both nodes.

The edge batches the newest frame of each of its cameras; the server batches frames of many
robots' cameras. Both wait at most `max_wait_s` for the streams they expect, never put two
frames of one stream in a batch (the older would wait for nothing), and run a batch as soon
as waiting cannot make it bigger. ROS-free with an injected clock, so the rules are tested
over time and arrival orders without sleeping; a node only ticks it (after an arrival, and
from a timer at `deadline`).

Words: a *stream* is one camera's frame sequence (edge: a camera topic; server: a robot's
features topic + the image's frame_id). A *source* is what a stream arrives through (a
subscription). Waiting frames are queued per source, each queue bounded, and a batch takes
one frame per source in turn (round-robin, the least recently served source first): one
source flooding frames costs the others at most their turn, never their place. Per-stream
bookkeeping is bounded in size and age, and a departed source is released with `forget`.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .bounded import BoundedTable

T = TypeVar("T")
Clock = Callable[[], float]  # seconds, monotonic


@dataclass(frozen=True)
class BatchPolicy:
    """max_batch: most frames in one batch (1: every frame runs at once, nothing waits).
    max_wait_s: longest a frame waits for frames of other streams to batch with.
    newest_only: a newer frame of a stream replaces its waiting one (the replaced one is
        returned by `add` as dropped) instead of queueing behind it.
    active_window_s: without a fixed set of expected streams, the streams heard this recently
        are the ones a batch waits for.
    queue_per_source: most frames one source may have waiting (0: max_batch); beyond it the
        source's oldest waiting frame is dropped.
    max_streams: most streams remembered as active; the least recently heard is forgotten first.
    """

    max_batch: int = 1
    max_wait_s: float = 0.0
    newest_only: bool = False
    active_window_s: float = 1.0
    queue_per_source: int = 0
    max_streams: int = 1024

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_wait_s < 0 or self.active_window_s < 0:
            raise ValueError(f"waits must be >= 0, got max_wait_s={self.max_wait_s}, "
                             f"active_window_s={self.active_window_s}")
        if self.queue_per_source < 0 or self.max_streams < 1:
            raise ValueError(f"queue_per_source must be >= 0 and max_streams >= 1, got "
                             f"{self.queue_per_source} and {self.max_streams}")

    @property
    def source_capacity(self) -> int:
        return self.queue_per_source or self.max_batch


@dataclass(eq=False)  # identity: items may be numpy arrays
class _Waiting(Generic[T]):
    item: T
    stream: Hashable
    source: Hashable
    since: float  # when this stream's place in the queue started waiting; a replacement keeps it


class BatchScheduler(Generic[T]):
    """Frames in (`add`), batches out (`pop_ready`), a `deadline` for the node's timer.

    `expected`: the streams a batch waits for (the edge's cameras). None: the streams heard
    within the policy's active window (the server's robots, which come and go).
    """

    def __init__(self, policy: BatchPolicy, *, expected: Collection[Hashable] | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._expected = frozenset(expected) if expected is not None else None
        # source -> its waiting frames, oldest first; ordered least recently served first.
        self._queues: OrderedDict[Hashable, deque[_Waiting[T]]] = OrderedDict()
        # stream -> its source, touched when heard; at most max_streams, none beyond the window.
        self._heard: BoundedTable[Hashable, Hashable] = BoundedTable(policy.max_streams, policy.active_window_s)

    def __len__(self) -> int:
        """Frames waiting."""
        return sum(len(q) for q in self._queues.values())

    @property
    def active_streams(self) -> int:
        """Streams heard within the active window (at most max_streams)."""
        self._heard.expire(self.clock())
        return len(self._heard)

    @property
    def deadline(self) -> float | None:
        """Clock time at which the longest-waiting frame has waited max_wait_s; None: nothing waits."""
        since = [q[0].since for q in self._queues.values()]
        return min(since) + self.policy.max_wait_s if since else None

    def add(self, item: T, stream: Hashable, source: Hashable | None = None) -> list[T]:
        """Queue one frame (source defaults to the stream). Returns the frames it displaced,
        which never run: the stream's waiting frame under newest_only, or the source's oldest
        when its queue is full."""
        now = self.clock()
        source = stream if source is None else source
        self._hear(stream, source, now)
        queue = self._queues.setdefault(source, deque())
        if self.policy.newest_only:
            for waiting in queue:
                if waiting.stream == stream:
                    replaced, waiting.item = waiting.item, item
                    return [replaced]
        dropped = [queue.popleft().item] if len(queue) >= self.policy.source_capacity else []
        queue.append(_Waiting(item, stream, source, now))
        return dropped

    def ready(self) -> bool:
        """Whether a batch should run now: it is full, a stream has a second frame waiting,
        every expected stream is in it, or the deadline has passed."""
        if not self._queues:
            return False
        now = self.clock()
        batch, repeat = self._select()
        if repeat or len(batch) >= self.policy.max_batch or now >= self.deadline:
            return True
        streams = {w.stream for w in batch}
        if self._expected is not None:
            return self._expected <= streams
        self._heard.expire(now)
        return sum(1 for s in streams if s in self._heard) >= len(self._heard)

    def take(self) -> list[T]:
        """The next batch (round-robin over sources), removed from the queues; [] if none wait."""
        batch, _ = self._select()
        served: list[Hashable] = []
        for waiting in batch:
            self._queues[waiting.source].remove(waiting)
            if waiting.source not in served:
                served.append(waiting.source)
        for source in served:
            if self._queues[source]:
                self._queues.move_to_end(source)
            else:
                del self._queues[source]
        return [w.item for w in batch]

    def pop_ready(self) -> list[list[T]]:
        """Every batch that should run now, in order."""
        batches = []
        while self.ready():
            batches.append(self.take())
        return batches

    def forget(self, source: Hashable) -> list[T]:
        """Release a departed source: its waiting frames (returned, they never run) and its
        streams, which are no longer waited for."""
        queue = self._queues.pop(source, deque())
        self._heard.forget(lambda stream, src: src == source)
        return [w.item for w in queue]

    def clear(self) -> list[T]:
        """Forget everything; returns the frames that were waiting."""
        items = [w.item for q in self._queues.values() for w in q]
        self._queues.clear()
        self._heard.clear()
        return items

    # --- internals ---------------------------------------------------------------------

    def _hear(self, stream: Hashable, source: Hashable, now: float) -> None:
        self._heard.put(stream, source, now)

    def _select(self) -> tuple[list[_Waiting[T]], bool]:
        """The batch that would run now, and whether some stream has a second frame waiting.
        Round r takes each source's r-th stream (its oldest frame of it), sources in order."""
        candidates: list[list[_Waiting[T]]] = []
        repeat = False
        for queue in self._queues.values():
            seen: set[Hashable] = set()
            firsts = []
            for waiting in queue:
                if waiting.stream in seen:
                    repeat = True
                else:
                    seen.add(waiting.stream)
                    firsts.append(waiting)
            candidates.append(firsts)
        batch: list[_Waiting[T]] = []
        streams: set[Hashable] = set()
        for r in range(max((len(c) for c in candidates), default=0)):
            for firsts in candidates:
                if r < len(firsts) and firsts[r].stream not in streams and len(batch) < self.policy.max_batch:
                    batch.append(firsts[r])
                    streams.add(firsts[r].stream)
        return batch, repeat
