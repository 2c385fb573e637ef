"""Timing what runs in this process: median wall time, and ONNX Runtime sessions set up as
the nodes set them up."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def median_ms(fn: Callable[[], Any], runs: int, warmup: int = 2) -> float:
    """Median wall time of fn() in ms (warm-up runs first: lazy allocation, caches)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def ort_session(path: Path, threads: int = 0) -> Any:
    """A CPU ONNX Runtime session configured like the nodes' backend."""
    from mtl_split_core.backends import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"], threads=threads)
