"""The rclpy node we drive a pipeline from, inside our own process: evaluate's replay (and
through it the live benchmarks) and the tests.

It has its own context and executor, so it never disturbs another rclpy user of the process,
and its waits spin it and fail with a message that says what was awaited.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Longest single spin while waiting: how late a wait notices its deadline or a tick is due.
SPIN_TICK_S = 0.005
SERVICE_SETTLE_S = 1.0


class DriverNode:
    """describe_failure(): appended to a timeout's message (e.g. the end of the node logs)."""

    def __init__(self, name: str, describe_failure: Callable[[], str] | None = None) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.describe_failure = describe_failure
        self._clients: dict[tuple[type, str], Any] = {}

    def spin_once(self, timeout: float = 0.0) -> None:
        self.executor.spin_once(timeout_sec=timeout)

    def spin_for(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            self.executor.spin_once(timeout_sec=min(left, SPIN_TICK_S))

    def spin_until(self, predicate: Callable[[], Any], timeout: float, tick: Callable[[], None] | None = None,
                   tick_every: float = 0.25) -> Any:
        """Spin until predicate() is truthy and return its value (None after timeout); call
        tick() every tick_every seconds meanwhile (e.g. re-publish until a node has
        discovered us)."""
        end = time.perf_counter() + timeout
        next_tick = 0.0
        while True:
            if tick is not None and time.perf_counter() >= next_tick:
                tick()
                next_tick = time.perf_counter() + tick_every
            value = predicate()
            if value or time.perf_counter() >= end:
                return value or None
            self.executor.spin_once(timeout_sec=SPIN_TICK_S)

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str,
                 tick: Callable[[], None] | None = None, tick_every: float = 0.25) -> Any:
        """spin_until, raising TimeoutError (naming `what`) if the predicate never holds."""
        value = self.spin_until(predicate, timeout, tick, tick_every)
        if value is None:
            more = f"\n{self.describe_failure()}" if self.describe_failure is not None else ""
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{more}")
        return value

    def collect(self, msg_type: type, topic: str, qos: Any = 50) -> list[Any]:
        """Subscribe; the list the messages are appended to."""
        received: list[Any] = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 10.0) -> Any:
        """Call a service and return its response. One client per service for the driver's
        life: a service's response path is discovered separately from its request path (ready
        means only the latter) and, on a loaded machine, lags; a response sent before it is
        matched is lost. So a new client waits a moment after ready, and later calls reuse it."""
        client = self._clients.get((srv_type, name))
        if client is None:
            client = self._clients[(srv_type, name)] = self.node.create_client(srv_type, name)
            self.wait_for(client.service_is_ready, timeout, f"service {name}")
            self.spin_for(SERVICE_SETTLE_S)
        self.wait_for(client.service_is_ready, timeout, f"service {name}")
        future = client.call_async(request)
        self.wait_for(future.done, timeout, f"a response from {name}")
        return future.result()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> "DriverNode":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
