"""Trained model -> deployable bundle (backbone.onnx, heads.onnx, manifest.json).

The ONNX files are checked against torch on a probe batch before the manifest is written, so
a bundle on disk always computes what the trained model computes.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtl_split_core.bundle import (
    BACKBONE_FILE,
    ENTROPY_FILE,
    FEATURES_NAME,
    HEADS_FILE,
    IMAGE_INPUT,
    FeatureSpec,
    InputSpec,
    Manifest,
    write_manifest,
)

from mtl_split_core.entropy import INTRA, RESIDUAL, save_tables

from .bottleneck import INT8_SCALE, INT8_ZERO_POINT
from .entropy_model import intra_tables, residual_tables
from .errors import TrainingError
from .models import MODEL_META, SplitModel, count_parameters, load_model

OPSET = 17
RUN_META = "run.json"
_TOLERANCE = 1e-3  # max abs difference ONNX Runtime vs torch (relative to the output's scale)


def _export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str,
                 output_names: list[str]) -> None:
    axes = {name: {0: "batch"} for name in [input_name, *output_names]}
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and chosen on purpose:
        warnings.simplefilter("ignore", DeprecationWarning)  # it is the one verified here
        torch.onnx.export(
            module, (example,), str(path), input_names=[input_name], output_names=output_names,
            dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )


_GRID_FLIPS = 0.01  # share of bottleneck symbols allowed one step apart (float noise at a rounding boundary)


def _check_grid(ours: np.ndarray, theirs: np.ndarray) -> None:
    """A bottleneck's features are rounded to the int8 grid in the graph: a value that lands
    within float noise of a rounding boundary may round one step apart in ONNX Runtime and
    torch (what the server decodes either way). More than that is a broken export."""
    steps = np.abs(np.round(ours / INT8_SCALE) - np.round(theirs / INT8_SCALE))
    flipped = float(np.mean(steps > 0))
    if steps.max() > 1 or flipped > _GRID_FLIPS:
        raise TrainingError(f"ONNX export of {FEATURES_NAME} differs from torch by up to {int(steps.max())} int8 steps "
                            f"on {100 * flipped:.2g}% of the values; this backbone/opset is not exportable")


def _check_against_torch(model: SplitModel, out_dir: Path, images: torch.Tensor) -> None:
    import onnxruntime as ort

    with torch.no_grad():
        features = model.edge(images)
        logits = model.server_part()(features)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # a 2-image probe: threads only add contention
    edge = ort.InferenceSession(str(out_dir / BACKBONE_FILE), options, providers=["CPUExecutionProvider"])
    heads = ort.InferenceSession(str(out_dir / HEADS_FILE), options, providers=["CPUExecutionProvider"])
    onnx_features = edge.run([FEATURES_NAME], {IMAGE_INPUT: images.numpy()})[0]
    onnx_logits = heads.run(None, {FEATURES_NAME: features.numpy()})
    checks = [(t.output, l, o) for t, l, o in zip(model.tasks, logits, onnx_logits)]
    if model.encoder is not None:
        _check_grid(features.numpy(), onnx_features)
    else:
        checks.insert(0, (FEATURES_NAME, features, onnx_features))
    for name, ours, theirs in checks:
        err = float(np.abs(ours.numpy() - theirs).max())
        scale = 1.0 + float(np.abs(ours.numpy()).max())
        if err > _TOLERANCE * scale:
            raise TrainingError(f"ONNX export of {name} differs from torch by {err:.3g}; this backbone/opset is not exportable")


def export_bundle(
    source: str | Path | SplitModel,
    out_dir: str | Path,
    *,
    input_spec: InputSpec | None = None,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """Write a bundle for one model: a SplitModel, or a directory holding model.json +
    model.safetensors (an MTL run dir, or one task's dir of an STL run). Returns the manifest."""
    if isinstance(source, SplitModel):
        model = source
        input_spec = input_spec or InputSpec(width=model.spec.input_size, height=model.spec.input_size)
        saved_extra: dict[str, Any] = {}
    else:
        source = Path(source)
        if (source / RUN_META).is_file() and not (source / MODEL_META).is_file():
            raise TrainingError(f"{source} is an STL run with one model per task: export it with export_run "
                                f"(`mtl-split export {source}`), or point at {source}/<task>")
        model, saved_input, saved_extra = load_model(source)
        input_spec = input_spec or saved_input
    model = model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = model.spec.input_size
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = model.edge(images)
    _export_onnx(model.edge, images, out_dir / BACKBONE_FILE, IMAGE_INPUT, [FEATURES_NAME])
    _export_onnx(model.server_part(), features, out_dir / HEADS_FILE, FEATURES_NAME,
                 [t.output for t in model.tasks])
    _check_against_torch(model, out_dir, images)
    bottleneck = model.spec.bottleneck
    files = {BACKBONE_FILE: "", HEADS_FILE: ""}
    if model.prior is not None:
        # Integer tables, computed once here: edge and server only ever read the integers.
        save_tables(out_dir / ENTROPY_FILE, {INTRA: intra_tables(model.prior, model.symbol_counts.numpy()),
                                             RESIDUAL: residual_tables(model.residual_counts.numpy())})
        files[ENTROPY_FILE] = ""
    features_spec = FeatureSpec(
        shape=tuple(int(d) for d in model.feature_shape),
        dtype="int8" if bottleneck else "float32",
        codec="entropy" if model.prior is not None else "zstd" if bottleneck else "none",
        scale=INT8_SCALE if bottleneck else None,
        zero_point=INT8_ZERO_POINT if bottleneck else None,
        entropy=ENTROPY_FILE if model.prior is not None else None,
    )
    manifest = Manifest(
        backbone=model.spec.backbone,
        split_point=model.split_point,
        input=input_spec,
        features=features_spec,
        tasks=model.tasks,
        files=files,
        bottleneck_channels=int(bottleneck) if bottleneck else None,
        extra={
            **saved_extra,
            **(extra or {}),
            "model": dataclasses.asdict(model.spec),
            "split_index": model.split_index,
            "stages": [s.name for s in model.stage_infos],
            "edge_params": count_parameters(model.edge),
            "server_params": count_parameters(model.server_part()),
            "onnx_opset": OPSET,
        },
    )
    return write_manifest(out_dir, manifest)


def export_run(run_dir: str | Path, out_dir: str | Path) -> list[Manifest]:
    """Export a training run: one bundle for MTL, one bundle per task (out_dir/<task>) for STL."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    meta_path = run_dir / RUN_META
    if not meta_path.is_file():
        raise TrainingError(f"{run_dir}: no {RUN_META}; point at a directory made by `mtl-split train`")
    meta = json.loads(meta_path.read_text())
    if meta.get("status") != "finished":
        raise TrainingError(f"{run_dir}: training has not finished (status {meta.get('status')!r}); "
                            "resume it with `mtl-split train ... --resume`")
    manifests = []
    for member, rel in meta["members"].items():
        target = out_dir / rel if rel != "." else out_dir
        if target.exists() and rel != ".":
            shutil.rmtree(target)
        manifests.append(export_bundle(run_dir / rel, target, extra={"mode": meta["mode"], "member": member}))
    return manifests
