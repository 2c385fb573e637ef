"""`mtl-split compare`: the MTL-vs-STL table (accuracy per task, edge parameters, split-tensor
bytes per frame, training time) from one config trained once as MTL and once as STL."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .config import config_from_dict, load_config
from .models import ModelSpec, SplitModel
from .run import FINAL, METRICS, train_run

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


def _train(raw: dict[str, Any], mode: str, out: Path, reuse: bool) -> dict[str, Any]:
    if reuse and (out / FINAL).is_file():
        return json.loads((out / METRICS).read_text())
    raw = {**raw, "mode": mode, "name": f"{raw.get('name', 'compare')}_{mode}"}
    return train_run(config_from_dict(raw), raw, out, overwrite=True)


def _split_bytes(spec: ModelSpec, tasks: tuple) -> int:
    """float32 bytes of one frame's split tensor (what the paper sends, uncompressed)."""
    return 4 * math.prod(SplitModel(spec, tasks[:1]).feature_shape)


def summarize(cfg_raw: dict[str, Any], mtl: dict[str, Any], stl: dict[str, Any], command: str) -> dict[str, Any]:
    cfg = config_from_dict(cfg_raw)
    m = mtl["members"]["mtl"]
    tasks = list(m["test"])
    rows = []
    for task in tasks:
        s = stl["members"][task]
        rows.append({
            "task": task,
            "mtl_test_accuracy": m["test"][task]["accuracy"], "stl_test_accuracy": s["test"][task]["accuracy"],
            "mtl_val_accuracy": m["epochs"][-1]["val_accuracy"][task],
            "stl_val_accuracy": s["epochs"][-1]["val_accuracy"][task],
        })
    from .datasets import open_data

    task_specs = open_data(cfg.data.spec, cfg.data.options(cfg.seed)).tasks
    split_bytes = _split_bytes(cfg.model_spec(), task_specs)
    stl_members = [stl["members"][t] for t in tasks]
    return {
        "command": command,
        "config": cfg.to_dict(),
        "tasks": rows,
        "edge_params": {"mtl": m["edge_params"], "stl_sum": sum(s["edge_params"] for s in stl_members)},
        "total_params": {"mtl": m["total_params"], "stl_sum": sum(s["total_params"] for s in stl_members)},
        "split_bytes_per_frame": {"mtl": split_bytes, "stl_sum": split_bytes * len(tasks)},
        "train_seconds": {"mtl": m["train_seconds"], "stl_sum": sum(s["train_seconds"] for s in stl_members)},
        "epochs": cfg.train.epochs,
        "backbone": cfg.model_spec().backbone,
    }


def to_markdown(r: dict[str, Any]) -> str:
    c = r["config"]
    d = c["data"]
    test_kind = (f"out-of-distribution (floor/wall hues {d['ood_hues']} held out)" if d["ood_hues"]
                 else "in-distribution")
    lines = [
        "# MTL vs STL on procedural scenes",
        "",
        f"{r['backbone']} from random init, "
        f"{d['size']}x{d['size']} px, {d['train_size']} training images, {r['epochs']} epoch{'s' if r['epochs'] != 1 else ''} for the MTL model and "
        f"for each STL model; test split: {d['test_size']} images, {test_kind}; validation: {d['val_size']} "
        "in-distribution images.",
        "",
        "| task | MTL test acc | STL test acc | MTL - STL | MTL val acc | STL val acc |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["tasks"]:
        diff = row["mtl_test_accuracy"] - row["stl_test_accuracy"]
        lines.append(f"| {row['task']} | {row['mtl_test_accuracy']:.3f} | {row['stl_test_accuracy']:.3f} | "
                     f"{diff:+.3f} | {row['mtl_val_accuracy']:.3f} | {row['stl_val_accuracy']:.3f} |")

    def ratio_row(name: str, key: str, fmt: str) -> str:
        mtl, stl = r[key]["mtl"], r[key]["stl_sum"]
        return f"| {name} | {format(mtl, fmt)} | {format(stl, fmt)} | {100 * (1 - mtl / stl):.1f}% |"

    lines += [
        "",
        "| cost | MTL (one model) | STL (sum of models) | MTL saves |",
        "|---|---|---|---|",
        ratio_row("edge parameters", "edge_params", ","),
        ratio_row("all parameters", "total_params", ","),
        ratio_row("split tensor bytes/frame (float32)", "split_bytes_per_frame", ","),
        ratio_row("training time (s, this machine)", "train_seconds", ".0f"),
        "",
        f"Made with: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


def run_compare(config: str | Path, out: str | Path, runs: str | Path, overrides: list[str], reuse: bool,
                command: str) -> dict[str, Any]:
    """Train (or reuse) both runs, write results.json + results.md to `out`."""
    _, raw = load_config(config, overrides)
    runs, out = Path(runs), Path(out)
    mtl = _train(raw, "mtl", runs / "mtl", reuse)
    stl = _train(raw, "stl", runs / "stl", reuse)
    result = summarize(raw, mtl, stl, command=command)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_JSON).write_text(json.dumps(result, indent=2) + "\n")
    (out / RESULTS_MD).write_text(to_markdown(result))
    return result
