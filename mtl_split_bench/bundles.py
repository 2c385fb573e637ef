"""The models benchmarks measure: random-init or trained bundles, cached under a work
directory keyed by everything that defines them - the manifest schema version included, so a
bundle exported by an older release is exported again rather than failing to load - and a
second run skips the exports. Training runs are cached apart from their exports: a new
manifest schema re-exports, it does not retrain. torch is imported only by the functions
that build them."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mtl_split_core.bundle import MANIFEST_SCHEMA_VERSION

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
           "seed": seed, **({"calibrate": True} if calibrate else {}), "manifest_schema": MANIFEST_SCHEMA_VERSION}

    def build(out: Path) -> None:
        from mtl_split_core.bundle import InputSpec
        from mtl_split_training.export import export_bundle

        model = random_model(backbone, tasks, size, split, bottleneck, seed, calibrate)
        export_bundle(model, out, input_spec=InputSpec(width=size, height=size),
                      extra={"mode": "untrained", "seed": seed})

    return cached_dir(work / "bundles", key, build, is_bundle=True)


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


def _cached(out: Path, key: dict[str, Any], is_bundle: bool = False) -> bool:
    marker = out / "bench_key.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == json.loads(json.dumps(key))):
        return False
    if is_bundle:  # a bundle that no longer loads (files changed, older code) is built again
        from mtl_split_core.bundle import load_manifest
        from mtl_split_core.errors import BundleError

        try:
            load_manifest(out)
        except BundleError as e:
            print(f"mtl-split: cached bundle {out} does not load ({e}); exporting it again")
            return False
    return True


def _mark(out: Path, key: dict[str, Any]) -> None:
    (out / "bench_key.json").write_text(json.dumps(key, sort_keys=True) + "\n")


def cached_dir(work: Path, key: dict[str, Any], build: Callable[[Path], None], is_bundle: bool = False) -> Path:
    """work/<slug of key>: built by build(dir) once, reused while key is unchanged (and, for
    a bundle, while it loads)."""
    out = work / _slug(key)
    if not _cached(out, key, is_bundle):
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        build(out)
        _mark(out, key)
    return out


def trained_bundle(work: Path, raw: dict[str, Any]) -> Path:
    """Train a raw config (the code path of `mtl-split train`) and export it; cached by the
    config, so the benchmark trains once and later runs only measure."""
    return trained_export(trained_run(work, raw))


def trained_run(work: Path, raw: dict[str, Any]) -> Path:
    """The run directory of a raw config, trained once (cached by the config)."""
    def build(out: Path) -> None:
        from mtl_split_training.config import config_from_dict
        from mtl_split_training.run import train_run

        train_run(config_from_dict(raw), raw, out / "run", overwrite=True)

    key = {"backbone": raw["model"]["backbone"], "size": raw["data"]["size"], "config": raw}
    return cached_dir(work / "trained", key, build) / "run"


def trained_export(run: Path) -> Path:
    """The bundle of a trained run, exported once per manifest schema version."""
    def build(out: Path) -> None:
        from mtl_split_training.export import export_run

        export_run(run, out)

    return cached_dir(run.parent / "bundles", {"manifest_schema": MANIFEST_SCHEMA_VERSION}, build, is_bundle=True)
