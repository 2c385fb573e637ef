"""What the benchmarks share: output paths, JSON + tables + plots, cached bundles, timing,
image codecs and the link-rate model.

Benchmarks compare deployments side by side in one run (machines are noisy; ratios measured
together are what we report). Bundles they build are cached under a work directory keyed by
everything that defines them, so a second run skips the exports. torch is imported only by
the functions that build bundles.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPORT_DIR = Path("reports/bench")
# Link rates of the split-computing literature (Mbit/s), used by the analytic latency model.
LINKS_MBPS: dict[str, float] = {"3g": 1.1, "4g": 5.85, "wifi": 18.88}
# The procedural dataset's factors, in the order benchmarks add tasks.
SHAPES_TASKS = ("shape", "scale", "object_hue", "floor_hue", "wall_hue", "orientation")
SYNTHETIC_CLASSES = 10  # classes of a synthetic task head beyond the dataset's six factors
PNG_MAX_BYTES = 200_000


# --- arguments and output ---------------------------------------------------------------------

def add_common_arguments(p: argparse.ArgumentParser, name: str) -> None:
    """--out, --work, --full: every benchmark takes them."""
    p.add_argument("--out", type=Path, default=REPORT_DIR / f"{name}.json", help="result JSON (PNG beside it)")
    p.add_argument("--work", type=Path, default=REPORT_DIR / "work",
                   help="cache of the bundles/models the benchmark builds (reused across runs)")
    p.add_argument("--full", action="store_true", help="the real-machine setting (larger, longer); default: small")


def write_result(out: Path, result: dict[str, Any]) -> Path:
    """result + machine description -> out (JSON)."""
    from .report import machine

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "machine": machine()}, indent=2) + "\n")
    print(f"wrote {out}")
    return out


def png_path(out: Path, suffix: str = "") -> Path:
    return out.with_name(f"{out.stem}{suffix}.png")


def save_figure(fig: Any, path: Path) -> Path:
    """Small PNGs (they go into docs/img): modest dpi, and say so if one is still large."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    if path.stat().st_size > PNG_MAX_BYTES:
        print(f"note: {path} is {path.stat().st_size // 1000} KB")
    print(f"wrote {path}")
    return path


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """columns: (key, header); values printed with str(), floats with 4 significant digits."""
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    table = [[h for _, h in columns]] + [[cell(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


def progress(iterable: Any = None, **kw: Any) -> Any:
    from tqdm import tqdm

    return tqdm(iterable, **kw)


# --- tasks and bundles ------------------------------------------------------------------------

def task_classes(n: int) -> dict[str, list[str]]:
    """n task heads: the dataset's factors first, then synthetic 10-class heads (memory,
    bytes and compute do not depend on what a head was trained for)."""
    from mtl_split_training.datasets.shapes_factors import FACTORS

    real = {f.name: list(f.class_names) for f in FACTORS}
    names = [*SHAPES_TASKS[:n], *(f"synthetic_{i}" for i in range(len(SHAPES_TASKS) + 1, n + 1))]
    return {t: real.get(t, [f"c{k}" for k in range(SYNTHETIC_CLASSES)]) for t in names}


def random_bundle(work: Path, backbone: str, tasks: dict[str, list[str]], size: int, split: int | str = -1,
                  bottleneck: int | None = None, seed: int = 0) -> Path:
    """An exported random-init bundle, cached under work/ by its definition. BatchNorm keeps
    its initial statistics: fine for memory, bytes of dense tensors and compute time."""
    key = {"backbone": backbone, "tasks": tasks, "size": size, "split": split, "bottleneck": bottleneck,
           "seed": seed}
    out = work / "bundles" / _slug(key)
    if _cached(out, key):
        return out
    import torch

    from mtl_split_core.bundle import InputSpec, TaskSpec
    from mtl_split_training.export import export_bundle
    from mtl_split_training.models import ModelSpec, SplitModel

    torch.manual_seed(seed)
    spec = ModelSpec(backbone=backbone, split=split, bottleneck=bottleneck, input_size=size)
    model = SplitModel(spec, tuple(TaskSpec(t, tuple(c)) for t, c in tasks.items()))
    export_bundle(model, out, input_spec=InputSpec(width=size, height=size), extra={"mode": "untrained", "seed": seed})
    _mark(out, key)
    return out


def _slug(key: dict[str, Any]) -> str:
    import hashlib

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    head = f"{key.get('backbone', 'x')}_{key.get('size', '')}"
    return f"{head}_{digest}"


def _cached(out: Path, key: dict[str, Any]) -> bool:
    marker = out / "bench_key.json"
    return marker.is_file() and json.loads(marker.read_text()) == json.loads(json.dumps(key))


def _mark(out: Path, key: dict[str, Any]) -> None:
    (out / "bench_key.json").write_text(json.dumps(key, sort_keys=True) + "\n")


def cached_dir(work: Path, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """work/<slug of key>: built by build(dir) once, reused while key is unchanged."""
    out = work / _slug(key)
    if not _cached(out, key):
        out.mkdir(parents=True, exist_ok=True)
        build(out)
        _mark(out, key)
    return out


# --- measurement -----------------------------------------------------------------------------

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


def transfer_ms(nbytes: float, mbps: float) -> float:
    """Serialization time of nbytes on a link of mbps Mbit/s (the literature's latency model)."""
    return nbytes * 8 / (mbps * 1e3)


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def png(rgb: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def decode_image(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> RGB uint8 (what a server-side model would see)."""
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1].copy()


def dataset_frames(size: int, count: int, tasks: Sequence[str] | None = None, seed: int = 0
                ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """`count` rendered test-split frames and their labels per task (what trained models test on)."""
    from mtl_split_training.datasets import DataOptions, open_data

    split = open_data("shapes", DataOptions(size=size, tasks=tuple(tasks) if tasks else None, seed=seed)).split("test")
    n = min(count, len(split))
    samples = [split.sample(i) for i in range(n)]
    labels = {t: np.array([s[1][t] for s in samples]) for t in samples[0][1]}
    return [s[0] for s in samples], labels
