"""An evaluation report on disk: report.json, PNG plots beside it, and summary.md."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np


def machine() -> dict[str, Any]:
    import onnxruntime

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()}


def write(out: Path, report: dict[str, Any], e2e_latency_ms: list[float] | None = None) -> list[Path]:
    """Write report.json, plots and summary.md into out; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.json"]
    files[0].write_text(json.dumps(report, indent=2) + "\n")

    tasks = {t: m for t, m in report["tasks"].items() if "confusion" in m}  # classification tasks
    if tasks:
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(tasks), 3.2))
        names = list(tasks)
        ax.bar(names, [tasks[t]["accuracy"] for t in names], color="tab:blue", label="accuracy")
        ax.plot(names, [tasks[t]["macro_f1"] for t in names], "o", color="tab:orange", label="macro-F1")
        ax.set_ylim(0, 1)
        ax.set_title(f"per-task accuracy ({report['mode']})")
        ax.legend(loc="lower right")
        files.append(_save(fig, out / "accuracy.png"))

        fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.2), squeeze=False)
        for ax, t in zip(axes[0], names):
            m = np.asarray(tasks[t]["confusion"], float)
            ax.imshow(m / np.maximum(m.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
            ticks = np.arange(len(m))
            names = tasks[t]["classes"] if len(m) <= 12 else [str(i) for i in ticks]
            ax.set_xticks(ticks, names, rotation=60, ha="right", fontsize=7)
            ax.set_yticks(ticks, names, fontsize=7)
            ax.set_title(f"{t} (acc {tasks[t]['accuracy']:.2f})")
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
        files.append(_save(fig, out / "confusion.png"))

    if e2e_latency_ms:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        v = np.sort(np.asarray(e2e_latency_ms))
        ax.plot(v, np.arange(1, len(v) + 1) / len(v))
        ax.set_xlabel("end-to-end latency (ms)")
        ax.set_ylabel("fraction of frames")
        ax.grid(alpha=0.3)
        ax.set_title("latency CDF: image published -> results received")
        files.append(_save(fig, out / "latency_cdf.png"))

    files.append(out / "summary.md")
    files[-1].write_text(summary_markdown(report))
    return files


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


DENSE_METRICS = {"segmentation": ("miou", "pixel_accuracy"), "depth": ("abs_rel", "rmse_m", "delta1"),
                 "detection": ("map50", "map")}


def dense_summary(m: dict[str, Any]) -> str:
    """`miou 0.912, pixel_accuracy 0.981`: a dense task's metrics in one line."""
    return ", ".join(f"{k} {m[k]:.3f}" for k in DENSE_METRICS[m["kind"]] if k in m)


def summary_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Evaluation: {report['bag']}", "",
             f"bundle `{report['bundle']}` (model_id `{report['model_id']}`), mode **{report['mode']}**", "",
             "| task | accuracy | macro-F1 |", "|---|---|---|"]
    dense = {t: m for t, m in report["tasks"].items() if "kind" in m}
    for t, m in report["tasks"].items():
        if t not in dense:
            lines.append(f"| {t} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |")
    if dense:
        lines += ["", "| dense task | metrics |", "|---|---|"]
        for t, m in dense.items():
            lines.append(f"| {t} ({m['kind']}) | {dense_summary(m)} |")
    f = report["frames"]
    lines += ["", f"frames sent {f['sent']}, received {f['received']}, dropped {f['dropped']}"]
    if report.get("fps"):
        lines.append(f"throughput {report['fps']:.1f} frames/s")
    lat = report.get("latency_ms", {}).get("end_to_end")
    if lat and lat.get("p50") is not None:
        lines.append(f"end-to-end latency p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms")
    b = report.get("bytes_per_frame")
    if b:
        lines.append("bytes/frame: " + ", ".join(f"{k} {v}" for k, v in b.items()))
    return "\n".join(lines) + "\n"
