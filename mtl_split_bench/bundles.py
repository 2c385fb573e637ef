"""The models benchmarks measure: random-init or trained bundles, cached under a work
directory keyed by everything that defines them, so a second run skips the exports. torch is
imported only by the functions that build them."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The procedural dataset's factors, in the order benchmarks add tasks.
SHAPES_TASKS = ("shape", "scale", "object_hue", "floor_hue", "wall_hue", "orientation")
SYNTHETIC_CLASSES = 10  # classes of a synthetic task head beyond the dataset's six factors


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
