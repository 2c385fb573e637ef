"""The one rclpy timer a node needs to drive a BatchScheduler: it fires at the scheduler's
deadline, so a frame never waits longer than max_wait for streams that do not come."""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from mtl_split_core.batching import BatchScheduler

T = TypeVar("T")


class BatchTimer(Generic[T]):
    """tick() after every add: runs the batches that are ready and arms the timer for the next
    deadline. The timer runs on the steady clock, as the scheduler's default clock does
    (time.monotonic): a paused or replayed /clock (use_sim_time) must not stall batching."""

    def __init__(self, node: Node, scheduler: BatchScheduler[T], run: Callable[[list[T]], None]) -> None:
        self._node, self._scheduler, self._run = node, scheduler, run
        self._armed: float | None = None
        self._timer = node.create_timer(1.0, self._fired, clock=Clock(clock_type=ClockType.STEADY_TIME),
                                        autostart=False)

    def tick(self) -> None:
        for batch in self._scheduler.pop_ready():
            self._run(batch)
        deadline = self._scheduler.deadline
        if deadline == self._armed:
            return
        self._armed = deadline
        if deadline is None:
            self._timer.cancel()
            return
        self._timer.timer_period_ns = max(int((deadline - self._scheduler.clock()) * 1e9), 1)
        self._timer.reset()

    def _fired(self) -> None:
        self._armed = None  # a periodic timer: re-arm for whatever deadline is next (or stop)
        self.tick()

    def destroy(self) -> None:
        self._timer.cancel()
        self._node.destroy_timer(self._timer)
