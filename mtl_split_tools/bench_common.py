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
    """result + machine description + load average -> out (JSON)."""
    from .report import machine

    import os

    out.parent.mkdir(parents=True, exist_ok=True)
    # The load average says how shared the cores were while we measured (timings depend on it).
    load = [round(v, 2) for v in os.getloadavg()]
    out.write_text(json.dumps({**result, "machine": machine(), "load_average_at_end": load}, indent=2) + "\n")
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
                  bottleneck: int | None = None, seed: int = 0, calibrate: bool = False) -> Path:
    """An exported random-init bundle, cached under work/ by its definition. BatchNorm keeps
    its initial statistics (fine for memory, bytes of dense tensors and compute time) unless
    calibrate: then they come from rendered scenes, for realistic feature magnitudes."""
    key = {"backbone": backbone, "tasks": tasks, "size": size, "split": split, "bottleneck": bottleneck,
           "seed": seed, **({"calibrate": True} if calibrate else {})}
    out = work / "bundles" / _slug(key)
    if _cached(out, key):
        return out
    from mtl_split_core.bundle import InputSpec
    from mtl_split_training.export import export_bundle

    model = random_model(backbone, tasks, size, split, bottleneck, seed, calibrate)
    export_bundle(model, out, input_spec=InputSpec(width=size, height=size), extra={"mode": "untrained", "seed": seed})
    _mark(out, key)
    return out


def random_model(backbone: str, tasks: dict[str, list[str]], size: int, split: int | str = -1,
                 bottleneck: int | None = None, seed: int = 0, calibrate: bool = False) -> Any:
    """A random-init SplitModel in eval mode (see random_bundle for calibrate)."""
    import torch

    from mtl_split_core.bundle import InputSpec, TaskSpec
    from mtl_split_training.models import ModelSpec, SplitModel

    torch.manual_seed(seed)
    spec = ModelSpec(backbone=backbone, split=split, bottleneck=bottleneck, input_size=size)
    model = SplitModel(spec, tuple(TaskSpec(t, tuple(c)) for t, c in tasks.items()))
    if calibrate:
        from mtl_split_training.testing import calibrate_batchnorm

        calibrate_batchnorm(model, InputSpec(width=size, height=size), seed=seed)
    return model.eval()


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


def trained_bundle(work: Path, raw: dict[str, Any]) -> Path:
    """Train a raw config (the code path of `mtl-split train`) and export it; cached by the
    config, so the benchmark trains once and later runs only measure."""
    def build(out: Path) -> None:
        from mtl_split_training.config import config_from_dict
        from mtl_split_training.export import export_run
        from mtl_split_training.run import train_run

        train_run(config_from_dict(raw), raw, out / "run", overwrite=True)
        export_run(out / "run", out / "bundle")

    key = {"backbone": raw["model"]["backbone"], "size": raw["data"]["size"], "config": raw}
    return cached_dir(work / "trained", key, build) / "bundle"


def config_frames(raw: dict[str, Any], count: int, split: str = "test"
                  ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Up to `count` frames of a config's split (the held-out frames a run trained on `raw` is
    tested on) and their labels per task."""
    from mtl_split_training.config import config_from_dict
    from mtl_split_training.datasets import open_data

    cfg = config_from_dict(raw)
    images = open_data(cfg.data.spec, cfg.data.options(cfg.seed)).split(split)
    samples = [images.sample(i) for i in range(min(count, len(images)))]
    labels = {t: np.array([s[1][t] for s in samples]) for t in samples[0][1]}
    return [s[0] for s in samples], labels


def rendered_frames(size: int, count: int) -> list[np.ndarray]:
    """Rendered scenes for measurements that need realistic images but no labels."""
    return config_frames({"data": {"size": size, "test_size": count}}, count)[0]


# --- wire sizes -------------------------------------------------------------------------------

def feature_message_bytes(enc: Any, model_id: str) -> int:
    """Serialized (CDR) size of the SharedFeatures message carrying enc: what DDS sends."""
    from rclpy.serialization import serialize_message

    from mtl_split.msg import SharedFeatures

    from mtl_split_core import codec

    msg = SharedFeatures()
    msg.header.frame_id = "camera"
    msg.model_id = model_id
    return len(serialize_message(codec.to_message(enc, msg)))


def image_message_bytes(data: bytes, fmt: str, shape: tuple[int, ...] | None = None) -> int:
    """Serialized size of a sensor_msgs CompressedImage (fmt jpeg/png) or, with shape, an
    rgb8 Image carrying data."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    if shape is not None:
        msg = Image(height=shape[0], width=shape[1], encoding="rgb8", step=shape[1] * 3)
    else:
        msg = CompressedImage(format=fmt)
    msg.header.frame_id = "camera"
    msg.data = data
    return len(serialize_message(msg))
