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

    tasks = {t: m for t, m in report["tasks"].items() if "confusion" in m}  # labelled classification tasks
    predicted = {t: m["predictions"]["histogram"] for t, m in report["tasks"].items()
                 if m["kind"] == "classification" and m.get("predictions")}
    if predicted:
        fig, axes = plt.subplots(1, len(predicted), figsize=(3.4 * len(predicted), 3.2), squeeze=False)
        for ax, (t, hist) in zip(axes[0], predicted.items()):
            ax.bar(range(len(hist)), list(hist.values()), color="tab:green")
            ax.set_xticks(range(len(hist)), list(hist) if len(hist) <= 12 else [""] * len(hist), rotation=60,
                          ha="right", fontsize=7)
            ax.set_title(f"{t}: predicted classes")
            ax.set_ylabel("frames")
        files.append(_save(fig, out / "predictions.png"))
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
TOP_CLASSES = 3  # classes named in a summary's predictions column


def dense_summary(m: dict[str, Any]) -> str:
    """`miou 0.912, pixel_accuracy 0.981`: a dense task's metrics in one line."""
    return ", ".join(f"{k} {m[k]:.3f}" for k in DENSE_METRICS[m["kind"]] if k in m)


def predictions_summary(m: dict[str, Any]) -> str:
    """`cube 31, sphere 20, capsule 9 (mean score 0.81)`: what a task predicted, in one line."""
    p = m.get("predictions")
    if not p:
        return "no results"
    shares = p.get("histogram") or p.get("pixel_share")
    parts = []
    if shares:
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:TOP_CLASSES]
        parts.append(", ".join(f"{k} {v:g}" for k, v in top) + (", ..." if len(shares) > TOP_CLASSES else ""))
    if "per_frame" in p:
        parts.insert(0, f"{p['per_frame']:g} boxes/frame")
    if p.get("median_m") is not None:
        parts.append(f"median {p['median_m']} m, mean {p['mean_m']} m")
    if p.get("mean_score") is not None:
        parts.append(f"(mean score {p['mean_score']:.2f})")
    return " ".join(parts)


def _quality(m: dict[str, Any]) -> tuple[str, str]:
    if "accuracy" in m:
        return f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}"
    if m["kind"] != "classification" and m["labelled_frames"]:
        return dense_summary(m), ""
    return "-", "-"


def summary_markdown(report: dict[str, Any]) -> str:
    size = "x".join(map(str, report.get("image_size", [])))
    lines = [f"# Evaluation: {report['bag']}", "",
             f"bundle `{report['bundle']}` (model_id `{report['model_id']}`), mode **{report['mode']}**, "
             f"camera `{report.get('camera_topic')}` ({size}, {report.get('camera_type', '').rsplit('/', 1)[-1]})", "",
             "| task | kind | labelled / predicted frames | accuracy (dense: metrics) | macro-F1 | predictions |",
             "|---|---|---|---|---|---|"]
    for t, m in report["tasks"].items():
        quality, f1 = _quality(m)
        lines.append(f"| {t} | {m['kind']} | {m['labelled_frames']} / {m['predicted_frames']} | {quality} | {f1} | "
                     f"{predictions_summary(m)} |")
    for note in report.get("labels", {}).get("notes", []):
        lines.append(f"\nnote: {note}")
    f = report["frames"]
    lines += ["", f"frames sent {f['sent']}, received {f['received']}, dropped {f['dropped']}"]
    if report.get("fps"):
        lines.append(f"throughput {report['fps']:.1f} frames/s")
    latency = report.get("latency_ms", {})
    lat = latency.get("end_to_end")
    if lat and lat.get("p50") is not None:
        lines.append(f"end-to-end latency p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms")
    stages = [f"{k} {v['p50']}" for k, v in latency.items() if k != "end_to_end" and v.get("p50") is not None]
    if stages:
        lines.append("latency p50 per stage (ms): " + ", ".join(stages))
    b = report.get("bytes_per_frame")
    if b:
        lines.append("bytes/frame: " + ", ".join(f"{k} {v}" for k, v in b.items()))
    return "\n".join(lines) + "\n"
