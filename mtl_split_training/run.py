"""A training run directory: MTL (one model, all tasks) or STL (one model per task).

    runs/<name>/run.json       config (as given and resolved), mode, tasks, members, the data used
                               (real split sizes, notices), status (running, finished, failed +
                               error, interrupted)
    runs/<name>/metrics.json   per member: per-epoch losses / val metrics, test metrics, time; the data used
    runs/<name>/final.json     final test/val score per task and member (written when the run finishes)
    MTL: runs/<name>/model.{safetensors,json} (+ checkpoint.*)
    STL: runs/<name>/<task>/model.{safetensors,json} (+ checkpoint.*)
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig, config_from_dict
from .datasets import DataSource, open_data
from .distributed import DistContext
from .errors import TrainingError
from .export import RUN_META
from .trainer import MemberTrainer

METRICS = "metrics.json"
FINAL = "final.json"  # written last: its presence means the run is complete


def _member_dir_name(task: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", task) or task in (".", ".."):
        raise TrainingError(f"task name {task!r} cannot name an STL model directory; rename the column")
    return task


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _without_epochs(cfg: RunConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    d["train"]["epochs"] = None
    return d


def _prepare(out_dir: Path, cfg: RunConfig, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Previous run.json when resuming; refuses to mix runs or silently overwrite one."""
    meta_path = out_dir / RUN_META
    if resume:
        if not meta_path.is_file():
            raise TrainingError(f"--resume: {out_dir} has no {RUN_META} to resume")
        old = json.loads(meta_path.read_text())
        saved = config_from_dict(old["raw_config"])
        if _without_epochs(saved) != _without_epochs(cfg):
            raise TrainingError(f"--resume: the config differs from the one {out_dir} was trained with "
                                "(only train.epochs may change); use another --out")
        return old
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise TrainingError(f"{out_dir} already holds a run: pass --resume to continue it, "
                                "--overwrite to replace it, or choose another --out")
        shutil.rmtree(out_dir)
    return None


def train_run(cfg: RunConfig, raw_config: dict[str, Any], out_dir: str | Path, *, resume: bool = False,
              overwrite: bool = False, ctx: DistContext | None = None) -> dict[str, Any]:
    """Train every member of the run and return the metrics.json content."""
    previous_threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        return _train_members(cfg, raw_config, Path(out_dir), resume, overwrite, ctx or DistContext())
    finally:
        torch.set_num_threads(previous_threads)  # callers in the same process keep their setting


def check_splits(source: DataSource, cfg: RunConfig) -> None:
    """Refuse, before anything is trained, splits that are empty or smaller than one batch."""
    asked = cfg.data.options(cfg.seed).split_sizes()
    for name, count in source.sizes.items():
        if count:
            continue
        if asked[name] == 0:
            fix = f"data.{name}_size is 0"
        elif name == "train":
            fix = "give the data train images (the CSV's split column names none)"
        else:
            fix = (f"give the CSV {name} rows in its split column, drop the split column to split by the "
                   f"fractions, or raise data.{name}_fraction (now {getattr(cfg.data, f'{name}_fraction')})")
        raise TrainingError(f"{source.spec}: the {name} split is empty; {fix}")
    if source.sizes["train"] < cfg.train.batch_size:
        raise TrainingError(f"{source.spec}: the train split has {source.sizes['train']} images, fewer than one "
                            f"batch of train.batch_size {cfg.train.batch_size}; lower the batch size")


def _train_members(cfg: RunConfig, raw_config: dict[str, Any], out_dir: Path, resume: bool, overwrite: bool,
                   ctx: DistContext) -> dict[str, Any]:
    source = open_data(cfg.data.spec, cfg.data.options(cfg.seed))
    check_splits(source, cfg)
    old = _prepare(out_dir, cfg, resume, overwrite) if ctx.is_main else None
    ctx.barrier()
    if cfg.mode == "mtl":
        members = {"mtl": (".", source.tasks)}
    else:
        members = {t.name: (_member_dir_name(t.name), (t,)) for t in source.tasks}
    run_meta = {
        "name": cfg.name, "mode": cfg.mode, "status": "running", "raw_config": raw_config,
        "config": cfg.to_dict(), "world_size": ctx.world_size,
        "tasks": [{"name": t.name, "classes": list(t.classes)} for t in source.tasks],
        "members": {m: rel for m, (rel, _) in members.items()},
        "finished_members": (old or {}).get("finished_members", []) if resume else [],
        "data": data_used(source),
    }
    metrics_path = out_dir / METRICS
    metrics: dict[str, Any] = {"mode": cfg.mode, "members": {}}
    if resume and metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
    metrics["data"] = run_meta["data"]
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json(out_dir / RUN_META, run_meta)
    try:
        _train_each(cfg, source, members, out_dir, resume, ctx, run_meta, metrics)
    except BaseException as e:  # a run.json never says "running" about a run that stopped
        if ctx.is_main:
            run_meta.update(status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                            error=f"{type(e).__name__}: {e}")
            _write_json(out_dir / RUN_META, run_meta)
        raise
    return metrics


def data_used(source: DataSource) -> dict[str, Any]:
    """What a run trained and was tested on, as run.json and metrics.json record it."""
    return {"spec": source.spec, "sizes": source.sizes, "carved": list(source.carved), "notes": list(source.notes)}


def _train_each(cfg: RunConfig, source: DataSource, members: dict[str, tuple[str, Any]], out_dir: Path,
                resume: bool, ctx: DistContext, run_meta: dict[str, Any], metrics: dict[str, Any]) -> None:
    metrics_path = out_dir / METRICS
    for member, (rel, tasks) in members.items():
        if resume and member in run_meta["finished_members"] and cfg.train.epochs <= \
                len(metrics["members"].get(member, {}).get("epochs", [])):
            continue
        entry = metrics["members"].setdefault(member, {})

        def on_epoch(history: list[dict[str, Any]], entry: dict[str, Any] = entry) -> None:
            entry["epochs"] = history
            _write_json(metrics_path, metrics)

        trainer = MemberTrainer(cfg, source, tasks, out_dir / rel, ctx, label=member)
        result = trainer.run(resume=resume, on_epoch=on_epoch)
        if ctx.is_main:
            entry.update(epochs=result.history, test=result.test, train_seconds=result.train_seconds,
                         edge_params=result.edge_params, total_params=result.total_params)
            _write_json(metrics_path, metrics)
            run_meta["finished_members"] = sorted(set(run_meta["finished_members"]) | {member})
            _write_json(out_dir / RUN_META, run_meta)
    if ctx.is_main:
        _write_json(out_dir / FINAL, {
            "mode": cfg.mode,
            "members": {m: {"test_score": {t: v["score"] for t, v in e["test"].items()},
                            "val_score": e["epochs"][-1]["val_score"] if e["epochs"] else {},
                            "train_seconds": e["train_seconds"], "edge_params": e["edge_params"]}
                        for m, e in metrics["members"].items()},
        })
        run_meta["status"] = "finished"
        _write_json(out_dir / RUN_META, run_meta)
