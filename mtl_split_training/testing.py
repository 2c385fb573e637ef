"""Test helpers for other parts of the project: a real (untrained) bundle in seconds."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from mtl_split_core.bundle import InputSpec, Manifest, TaskSpec

from .datasets import DataOptions, open_data
from .datasets.scenes import TASKS as SCENE_TASKS
from .datasets.shapes_factors import FACTORS
from .datasets.torch_dataset import normalize
from .export import export_bundle
from .models import ModelSpec, SplitModel

_SHAPES_TASKS = {**{t.name: t for t in SCENE_TASKS}, **{f.name: f.task() for f in FACTORS}}


def _task_specs(tasks: Sequence[str] | Mapping[str, Sequence[str]]) -> tuple[TaskSpec, ...]:
    if isinstance(tasks, Mapping):
        return tuple(TaskSpec(name, tuple(classes)) for name, classes in tasks.items())
    unknown = [t for t in tasks if t not in _SHAPES_TASKS]
    if unknown:
        raise ValueError(f"unknown shapes task(s) {unknown}; pass a mapping name -> class names instead")
    return tuple(_SHAPES_TASKS[t] for t in tasks)


@torch.no_grad()
def calibrate_batchnorm(model: SplitModel, input_spec: InputSpec, seed: int = 0, batches: int = 4) -> None:
    """Train-mode forwards on rendered scenes (no gradient step): running stats only."""
    images = open_data("shapes", DataOptions(size=input_spec.width, seed=seed)).split("train")
    model.train()
    for b in range(batches):
        model(torch.stack([normalize(images.image(b * 16 + i), input_spec) for i in range(16)]))
    model.eval()


@torch.no_grad()
def spread_bottleneck(model: SplitModel, input_spec: InputSpec, seed: int = 0) -> None:
    """Scale the untrained bottleneck encoder so its pre-tanh outputs are about N(0, 1) per
    channel on rendered scenes: its symbols then use the int8 range and change from frame to
    frame as a trained code's do (random weights alone give nearly constant symbols)."""
    images = open_data("shapes", DataOptions(size=input_spec.width, seed=seed)).split("train")
    x = torch.stack([normalize(images.image(i), input_spec) for i in range(64)])
    conv = model.encoder.conv
    pre = conv(model._view(list(model.stages[:model.split_index + 1]))(x)).transpose(0, 1).flatten(1)
    mean, std = pre.mean(dim=1), pre.std(dim=1).clamp_min(1e-6)
    conv.weight.div_(std[:, None, None, None])
    conv.bias.sub_(mean).div_(std)


def make_tiny_bundle(
    out_dir: str | Path,
    tasks: Sequence[str] | Mapping[str, Sequence[str]] = ("shape", "scale"),
    size: int = 32,
    backbone: str = "mobilenetv3_small_100",
    bottleneck: int | None = None,
    head: str = "paper",
    split: int | str = -1,
    seed: int = 0,
    entropy: bool = False,
) -> Manifest:
    """Untrained bundle: procedural-scene task names (`scenes` dense ones too), or {task: class names}. BatchNorm statistics
    are set from a few rendered scenes, so features have realistic (order-one) magnitudes."""
    torch.manual_seed(seed)
    spec = ModelSpec(backbone=backbone, split=split, head=head, bottleneck=bottleneck, input_size=size,
                     entropy=entropy)
    model = SplitModel(spec, _task_specs(tasks))
    input_spec = InputSpec(width=size, height=size)
    calibrate_batchnorm(model, input_spec, seed=seed)
    if bottleneck:
        spread_bottleneck(model, input_spec, seed=seed)
    if entropy:  # the entropy tables' statistics, as training collects them (untrained prior)
        images = open_data("shapes", DataOptions(size=size, seed=seed)).split("val")
        model.fit_coding_counts([torch.stack([normalize(images.image(b * 16 + i), input_spec) for i in range(16)])
                                 for b in range(4)], seed=seed)
    return export_bundle(model, out_dir, input_spec=InputSpec(width=size, height=size),
                         extra={"mode": "untrained", "seed": seed})
