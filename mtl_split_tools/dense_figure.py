"""A PNG of dense results next to the truth: per frame the camera image with predicted boxes
(and true ones dashed), the predicted and true class masks, the predicted and true depth.

Predictions come from mtl_split_core.runtime on the bag's frames (the code path the live
nodes run; `evaluate` checks that live and offline agree), mapped onto the frame's pixels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mtl_split_core.bundle import load_manifest
from mtl_split_core.dense import Boxes
from mtl_split_core.runtime import DenseResult, EdgeModel, ServerModel

from .bags import Frame, decode_frame

FIGURE_SCORE = 0.3  # boxes drawn (the published ones go down to mtl_split_core.dense.SCORE_THRESHOLD)


def _draw_boxes(ax: Any, boxes: Boxes, classes: tuple[str, ...], colour: str, dashed: bool) -> None:
    from matplotlib.patches import Rectangle

    for (x0, y0, x1, y1), c, s in zip(boxes.xyxy, boxes.classes, boxes.scores):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour, lw=1.0,
                               ls="--" if dashed else "-"))
        if not dashed:
            ax.text(x0, y0 - 1, f"{classes[c]} {s:.2f}", color=colour, fontsize=5, va="bottom")


def dense_figure(bundle: Path, frames: list[Frame], out: Path, count: int = 4) -> Path:
    """Write out (PNG) for the first `count` frames of a bag with dense labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mtl_split_core.imaging import to_array

    manifest = load_manifest(bundle)
    edge, server = EdgeModel(bundle), ServerModel(bundle)
    tasks = {t.kind: t for t in manifest.tasks if t.dense}
    frames = frames[:count]
    columns = ["image + boxes" if "detection" in tasks else "image"]
    columns += [f"{k} {w}" for k in ("segmentation", "depth") if k in tasks for w in ("predicted", "true")]
    fig, axes = plt.subplots(len(frames), len(columns), figsize=(2.0 * len(columns), 2.0 * len(frames)),
                             squeeze=False)
    depth_max = max((float(np.nanmax(f.labels["depth"])) for f in frames if "depth" in f.labels), default=10.0)
    for row, frame in zip(axes, frames):
        rgb = to_array(decode_frame(frame), "rgb8")
        size = (rgb.shape[1], rgb.shape[0])
        result = server.predict(server.decode(edge([rgb])[0])[None])[0]
        pred = {t.kind: result[t.name].in_source(manifest.input, *size) for t in tasks.values()
                if isinstance(result[t.name], DenseResult)}
        row[0].imshow(rgb)
        if "detection" in tasks:
            truth = frame.labels.get(tasks["detection"].name)
            if truth is not None:
                _draw_boxes(row[0], truth, tasks["detection"].classes, "white", dashed=True)
            shown = pred["detection"]
            keep = shown.scores >= FIGURE_SCORE
            _draw_boxes(row[0], Boxes(shown.xyxy[keep], shown.classes[keep], shown.scores[keep]),
                        tasks["detection"].classes, "yellow", dashed=False)
        col = 1
        for kind, cmap, vmax in (("segmentation", "tab10", 9), ("depth", "viridis", depth_max)):
            if kind not in tasks:
                continue
            truth = frame.labels.get(tasks[kind].name)
            for image in (pred[kind], truth):
                if image is not None:
                    shown = np.where(image == 255, np.nan, image) if kind == "segmentation" else image
                    row[col].imshow(shown, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
                col += 1
    for ax, title in zip(axes[0], columns):
        ax.set_title(title, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{manifest.model_id}: dense results (boxes: yellow predicted with score >= {FIGURE_SCORE}, "
                 f"white dashed true; "
                 f"depth 0-{depth_max:.0f} m)", fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out
