"""Rates, latencies, drops and errors of a node -> diagnostic_msgs/DiagnosticArray on
/diagnostics, and error logging rate-limited per (source, kind) so one bad camera or robot
cannot flood the log while every occurrence is still counted.

Published keys (one DiagnosticStatus per node, named status_name(<node>) = "mtl_split: <node>"):
  <counter>            cumulative count (frames_in, frames_out, dropped, errors, errors.<kind>,
                       warnings.<kind>, ...);
                       dropped = frames never processed, dropped.<reason> the same by reason
                       (bad input, replaced while queued, lost in transport, ...)
  <counter>_hz         its rate over the last period
  <sample>_ms_mean/_p50/_max   e.g. compute_ms over the last period
  anything set with info() (model_id, backend, ...)
"""
from __future__ import annotations

import socket
import time
import traceback
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from mtl_split_core.bounded import BoundedTable
from mtl_split_core.topics import DIAGNOSTICS

FRAMES_IN = "frames_in"
FRAMES_OUT = "frames_out"
DROPPED = "dropped"
ERRORS = "errors"
WARNINGS = "warnings"
MAX_LOG_KEYS = 4096  # (source, kind) pairs whose last log time is remembered (least recent forgotten)
STATUS_PREFIX = "mtl_split: "


def status_name(node_fqn: str) -> str:
    """The DiagnosticStatus name of one of our nodes."""
    return STATUS_PREFIX + node_fqn


def status_node(name: str) -> str | None:
    """The node a DiagnosticStatus comes from; None if it is not one of ours."""
    return name.removeprefix(STATUS_PREFIX) if name.startswith(STATUS_PREFIX) else None


def error_key(kind: str) -> str:
    return f"{ERRORS}.{kind}"


def sequence_id(info: Mapping[str, Any]) -> tuple[int | None, bytes | None]:
    """(publication sequence number, publisher gid) of a received message's MessageInfo, for
    mtl_split_core.frame_losses; (None, None) where the RMW does not report them."""
    gid = info.get("publisher_gid")
    return info.get("publication_sequence_number"), gid["data"] if gid else None


class Diagnostics:
    def __init__(self, node: Node, period_s: float = 1.0, log_interval_s: float = 10.0) -> None:
        self._node = node
        self._log_interval_s = log_interval_s
        self._counts: dict[str, int] = defaultdict(int)
        self._last_counts: dict[str, int] = {}
        self._samples: dict[str, list[float]] = defaultdict(list)
        self._info: dict[str, str] = {}
        # (source, kind) -> (time of the last log line, occurrences not logged since)
        self._logged: BoundedTable[tuple[str, str], tuple[float, int]] = BoundedTable(MAX_LOG_KEYS)
        self._last_publish = time.monotonic()
        self._name = status_name(node.get_fully_qualified_name())
        self._hardware_id = socket.gethostname()
        self._pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self._timer = node.create_timer(period_s, self._tick)

    def count(self, key: str, n: int = 1) -> None:
        self._counts[key] += n

    def drop(self, reason: str, n: int = 1) -> None:
        """n frames the node will never turn into output: counted in `dropped` and `dropped.<reason>`."""
        if n:
            self.count(DROPPED, n)
            self.count(f"{DROPPED}.{reason}", n)

    def drops(self, counts: Mapping[str, int]) -> None:
        for reason, n in counts.items():
            self.drop(reason, n)

    def observe(self, key: str, value: float) -> None:
        self._samples[key].append(float(value))

    def info(self, key: str, value: object) -> None:
        self._info[key] = str(value)

    def error(self, source: str, kind: str, text: str) -> None:
        """Count an error; log it the first time per (source, kind), then at most once per
        log interval with the number of repeats."""
        self.count(ERRORS)
        self.count(error_key(kind))
        if (line := self._due(source, kind, text)) is not None:
            self._node.get_logger().error(line)

    def warn(self, source: str, kind: str, text: str) -> None:
        """A warning that may repeat (a rogue publisher, a refused parameter set): counted as
        warnings.<kind>, logged like error()."""
        self.count(f"{WARNINGS}.{kind}")
        if (line := self._due(source, kind, text)) is not None:
            self._node.get_logger().warning(line)

    def _due(self, source: str, kind: str, text: str) -> str | None:
        """The log line if one is due for (source, kind) now, else None (one more repeat)."""
        now = time.monotonic()
        last, suppressed = self._logged.get((source, kind), now, touch=False) or (-float("inf"), 0)
        if now - last < self._log_interval_s:
            self._logged.put((source, kind), (last, suppressed + 1), now)
            return None
        self._logged.put((source, kind), (now, 0), now)
        repeats = f" ({suppressed} more since the last report)" if suppressed else ""
        return f"[{kind}] {source}: {text}{repeats}"

    def forget(self, source: str) -> None:
        """A departed source's rate-limit entries (its counters stay in the node's totals)."""
        self._logged.forget(lambda key, value: key[0] == source)

    def set_period(self, period_s: float) -> None:
        self._timer.timer_period_ns = int(period_s * 1e9)
        self._timer.reset()

    def values(self) -> dict[str, str]:
        """The key/values of the status publish() would send now (resets period stats)."""
        now = time.monotonic()
        dt = max(now - self._last_publish, 1e-9)
        self._last_publish = now
        out = dict(self._info)
        for key, total in sorted(self._counts.items()):
            out[key] = str(total)
            out[f"{key}_hz"] = f"{(total - self._last_counts.get(key, 0)) / dt:.2f}"
        self._last_counts = dict(self._counts)
        for key, samples in sorted(self._samples.items()):
            if samples:
                a = np.asarray(samples)
                out[f"{key}_mean"] = f"{a.mean():.3f}"
                out[f"{key}_p50"] = f"{np.median(a):.3f}"
                out[f"{key}_max"] = f"{a.max():.3f}"
        self._samples.clear()
        return out

    def _tick(self) -> None:
        try:
            self.publish()
        except Exception as e:  # noqa: BLE001 - a timer callback must not end the node
            self.error(self._node.get_name(), "internal", f"diagnostics not published, unexpected "
                       f"{type(e).__name__}: {e}; please report this:\n{traceback.format_exc()}")

    def publish(self) -> None:
        new_errors = self._counts.get(ERRORS, 0) - self._last_counts.get(ERRORS, 0)
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if new_errors else DiagnosticStatus.OK,
            name=self._name,
            message=f"{new_errors} errors in the last period (see the node's log)" if new_errors else "ok",
            hardware_id=self._hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in self.values().items()],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(msg)

    def destroy(self) -> None:
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._pub)
