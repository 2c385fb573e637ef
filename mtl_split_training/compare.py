"""`mtl-split compare`: the MTL-vs-STL table (accuracy per task, edge parameters, split-tensor
bytes per frame, training time) from one config trained once as MTL and once as STL.

Same epochs for every model is the paper's protocol; with --equal-compute an extra MTL model
trains for epochs x tasks, the images the STL models see together (about the same time).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .config import config_from_dict, load_config
from .models import SplitModel
from .run import FINAL, METRICS, train_run

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


def _train(raw: dict[str, Any], mode: str, out: Path, reuse: bool, epochs: int | None = None) -> dict[str, Any]:
    if reuse and (out / FINAL).is_file():
        return json.loads((out / METRICS).read_text())
    raw = {**raw, "mode": mode, "name": f"{raw.get('name', 'compare')}_{out.name}"}
    if epochs is not None:
        raw["train"] = {**raw.get("train", {}), "epochs": epochs}
    return train_run(config_from_dict(raw), raw, out, overwrite=True)


def _task_specs(cfg: Any) -> tuple:
    from .datasets import open_data

    return open_data(cfg.data.spec, cfg.data.options(cfg.seed)).tasks


def _accuracies(member: dict[str, Any], task: str) -> tuple[float, float]:
    return member["test"][task]["score"], member["epochs"][-1]["val_score"][task]


def summarize(cfg_raw: dict[str, Any], runs: dict[str, dict[str, Any]], command: str) -> dict[str, Any]:
    """runs: "mtl" and "stl" metrics.json contents, optionally "mtl_equal"."""
    cfg = config_from_dict(cfg_raw)
    members = {"mtl": runs["mtl"]["members"]["mtl"]}
    if "mtl_equal" in runs:
        members["mtl_equal"] = runs["mtl_equal"]["members"]["mtl"]
    tasks = list(members["mtl"]["test"])
    stl = [runs["stl"]["members"][t] for t in tasks]
    rows = []
    for task, single in zip(tasks, stl):
        row: dict[str, Any] = {"task": task}
        for name, member in [*members.items(), ("stl", single)]:
            row[f"{name}_test_accuracy"], row[f"{name}_val_accuracy"] = _accuracies(member, task)
        rows.append(row)
    feature_shape = SplitModel(cfg.model_spec(), _task_specs(cfg)[:1]).feature_shape
    split_bytes = 4 * math.prod(feature_shape)  # float32, uncompressed: what the paper sends

    def costs(key: str) -> dict[str, float]:
        return {**{n: m[key] for n, m in members.items()}, "stl_sum": sum(s[key] for s in stl)}

    return {
        "command": command,
        "config": cfg.to_dict(),
        "data": runs["mtl"].get("data") or {"spec": cfg.data.spec},  # runs from before it was recorded: spec only
        "backbone": cfg.model_spec().backbone,
        "epochs": {"mtl": cfg.train.epochs, "stl": cfg.train.epochs,
                   **({"mtl_equal": cfg.train.epochs * len(tasks)} if "mtl_equal" in members else {})},
        "tasks": rows,
        "edge_params": costs("edge_params"),
        "total_params": costs("total_params"),
        "split_bytes_per_frame": {"mtl": split_bytes, "stl_sum": split_bytes * len(tasks)},
        "train_seconds": costs("train_seconds"),
    }


DATA_NAMES = {"shapes": "procedural scenes (shapes)", "scenes": "procedural multi-object scenes (scenes)",
              "h5": "the 3dshapes file {path}", "csv": "the labelled images of {path}"}


def describe_data(spec: str) -> str:
    kind, _, path = spec.partition(":")
    return DATA_NAMES.get(kind, spec).format(path=path)


def _count(used: dict[str, Any], config: dict[str, Any], split: str) -> str:
    """A split's real size (or, for runs that did not record it, the size configured)."""
    if "sizes" in used:
        return str(used["sizes"][split])
    return f"{config[f'{split}_size']} (configured)" if config.get(f"{split}_size") is not None else "all"


def _init(model: dict[str, Any]) -> str:
    if model.get("pretrained"):
        return "pretrained weights (" + (model.get("pretrained_file") or "timm's ImageNet weights") + ")"
    return f"the weights in {model['weights']}" if model.get("weights") else "random init"


def to_markdown(r: dict[str, Any]) -> str:
    d, used = r["config"]["data"], r.get("data") or {"spec": r["config"]["data"]["spec"]}
    epochs = r["epochs"]
    equal = "mtl_equal" in epochs
    test_kind = (f"out-of-distribution (floor/wall hues {list(d['ood_hues'])} never seen in training)"
                 if d["ood_hues"] else "in-distribution")
    columns = [("mtl", f"MTL {epochs['mtl']} ep"), *([("mtl_equal", f"MTL {epochs['mtl_equal']} ep")] if equal else []),
               ("stl", f"STL {epochs['stl']} ep")]
    noise = f" (salt-and-pepper {d['salt_pepper']})" if d["salt_pepper"] else ""
    lines = [
        f"# MTL vs STL on {describe_data(used['spec'])}",
        "",
        f"{r['backbone']} from {_init(r['config']['model'])}, {d['size']}x{d['size']} px, "
        f"{_count(used, d, 'train')} training images{noise}, tasks {', '.join(row['task'] for row in r['tasks'])}. "
        f"STL: one full model per task, each trained {epochs['stl']} epoch{'s' * (epochs['stl'] != 1)} like the MTL model"
        + (f"; MTL {epochs['mtl_equal']} ep sees as many images as the STL models together" if equal else "")
        + f". Test: {_count(used, d, 'test')} images, {test_kind}; val: {_count(used, d, 'val')} images"
        + (" (carved out of train)" if "val" in used.get("carved", []) else "") + ".",
        *(f"\nNote: {n}" for n in used.get("notes", [])),
        "",
        "| task | " + " | ".join(f"{label} test" for _, label in columns) + " | MTL - STL test | "
        + " | ".join(f"{label} val" for _, label in columns) + " |",
        "|---" * (2 * len(columns) + 2) + "|",
    ]
    for row in r["tasks"]:
        tests = " | ".join(f"{row[f'{key}_test_accuracy']:.3f}" for key, _ in columns)
        vals = " | ".join(f"{row[f'{key}_val_accuracy']:.3f}" for key, _ in columns)
        diff = row["mtl_test_accuracy"] - row["stl_test_accuracy"]
        lines.append(f"| {row['task']} | {tests} | {diff:+.3f} | {vals} |")

    def cost_row(name: str, key: str, fmt: str) -> str:
        mtl, stl = r[key]["mtl"], r[key]["stl_sum"]
        return f"| {name} | {format(mtl, fmt)} | {format(stl, fmt)} | {100 * (1 - mtl / stl):.1f}% |"

    lines += [
        "",
        "| cost | MTL (one model) | STL (sum of models) | MTL saves |",
        "|---|---|---|---|",
        cost_row("edge parameters", "edge_params", ","),
        cost_row("all parameters (edge + server)", "total_params", ","),
        cost_row("split tensor bytes/frame (float32)", "split_bytes_per_frame", ","),
        cost_row(f"training time, s ({epochs['mtl']} ep each)", "train_seconds", ".0f"),
    ]
    if equal:
        lines.append(f"| training time, s (MTL {epochs['mtl_equal']} ep) | {r['train_seconds']['mtl_equal']:.0f} | "
                     f"{r['train_seconds']['stl_sum']:.0f} | "
                     f"{100 * (1 - r['train_seconds']['mtl_equal'] / r['train_seconds']['stl_sum']):.1f}% |")
    lines += ["", f"Made with: `{r['command']}`", ""]
    return "\n".join(lines)


def delta_m(mtl: dict[str, float], stl: dict[str, float], higher_better: dict[str, bool]) -> float:
    """Delta_m (Maninis et al. 2019, as the MTL literature reports it): the mean over tasks of
    the MTL model's relative gain over the single-task model, in percent, with the sign
    flipped for metrics where lower is better (depth AbsRel)."""
    gains = [(mtl[t] - stl[t]) / stl[t] * (1 if higher_better[t] else -1) for t in mtl]
    return 100.0 * sum(gains) / len(gains)


def _direction(runs: dict[str, Any]) -> dict[str, bool]:
    from .task_metrics import SCORES

    better = {name: higher for name, higher in SCORES.values()}
    return {t: better[m.get("metric", "accuracy")] for t, m in runs["mtl"]["members"]["mtl"]["test"].items()}


def aggregate(per_seed: list[dict[str, Any]], directions: dict[str, bool]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every task's test score (MTL, STL, MTL - STL)
    and of Delta_m."""
    import numpy as np

    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}

    tasks = [row["task"] for row in per_seed[0]["tasks"]]
    rows = []
    for k, task in enumerate(tasks):
        mtl = [r["tasks"][k]["mtl_test_accuracy"] for r in per_seed]
        stl = [r["tasks"][k]["stl_test_accuracy"] for r in per_seed]
        rows.append({"task": task, "higher_is_better": directions[task], "mtl": stats(mtl), "stl": stats(stl),
                     "mtl_minus_stl": stats([m - s for m, s in zip(mtl, stl)])})
    deltas = [delta_m({row["task"]: row["mtl_test_accuracy"] for row in r["tasks"]},
                      {row["task"]: row["stl_test_accuracy"] for row in r["tasks"]}, directions) for r in per_seed]
    return {"seeds": [r["config"]["seed"] for r in per_seed], "tasks": rows, "delta_m_percent": stats(deltas),
            "delta_m_per_seed": deltas}


def aggregate_markdown(agg: dict[str, Any]) -> str:
    n = len(agg["seeds"])
    lines = [f"## Over {n} seed{'s' * (n != 1)} ({', '.join(map(str, agg['seeds']))}): test score, mean ± std", "",
             "| task | MTL | STL | MTL - STL |", "|---|---|---|---|"]
    for row in agg["tasks"]:
        arrow = "" if row["higher_is_better"] else " (lower is better)"
        cells = [f"{row[k]['mean']:.3f} ± {row[k]['std']:.3f}" for k in ("mtl", "stl", "mtl_minus_stl")]
        lines.append(f"| {row['task']}{arrow} | " + " | ".join(cells) + " |")
    d = agg["delta_m_percent"]
    lines += ["", f"Delta_m (mean relative gain of MTL over STL, sign flipped where lower is better): "
                  f"{d['mean']:+.2f}% ± {d['std']:.2f}%", ""]
    return "\n".join(lines)


def run_compare(config: str | Path, out: str | Path, runs: str | Path, overrides: list[str], reuse: bool,
                command: str, equal_compute: bool = False, seeds: int = 1) -> dict[str, Any]:
    """Train (or reuse) the runs of `seeds` seeds (the config's seed and the next ones), write
    results.json + results.md to `out`: per seed the table, over seeds mean ± std and Delta_m."""
    cfg, raw = load_config(config, overrides)
    runs, out = Path(runs), Path(out)
    per_seed, directions = [], {}
    for seed in range(cfg.seed, cfg.seed + seeds):
        seeded = {**raw, "seed": seed}
        where = runs if seeds == 1 else runs / f"seed{seed}"
        results = {"mtl": _train(seeded, "mtl", where / "mtl", reuse), "stl": _train(seeded, "stl", where / "stl", reuse)}
        if equal_compute:
            epochs = cfg.train.epochs * len(_task_specs(cfg))
            results["mtl_equal"] = _train(seeded, "mtl", where / "mtl_equal", reuse, epochs=epochs)
        per_seed.append(summarize(seeded, results, command=command))
        directions = _direction(results)
    result = {**per_seed[0], "per_seed": per_seed, "aggregate": aggregate(per_seed, directions)}
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_JSON).write_text(json.dumps(result, indent=2) + "\n")
    (out / RESULTS_MD).write_text(aggregate_markdown(result["aggregate"]) + "\n"
                                  + "\n".join(to_markdown(r) for r in per_seed))
    return result
