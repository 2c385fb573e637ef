"""Learning from a model already trained: warm start (`train.init_from`) and distillation
(`train.distill_from`).

A bottleneck trained for rate from random init must learn the task and the code at once in
a few epochs; started from the float model of the same backbone (its stages and heads) and
pulled towards that model's answers, it only has to learn to squeeze what the float model
already knows through the narrow wire (Hinton et al. 2015 for the softened logits;
supervised compression, Matsubara et al., for the teacher at the split).

Heads are matched by task name, not by position, so an STL model can start from the MTL
model's head of its task and a model with fewer tasks takes the right ones.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from .errors import TrainingError
from .models import MODEL_META, MODEL_WEIGHTS, SplitModel, load_model

_HEAD = re.compile(r"^heads\.(\d+)\.")


def model_dir(path: str | Path) -> Path:
    """A finished run (MTL) or a model directory -> the directory holding model.safetensors."""
    p = Path(path)
    if (p / MODEL_META).is_file() and (p / MODEL_WEIGHTS).is_file():
        return p
    if p.is_dir() and any(q.is_dir() and (q / MODEL_META).is_file() for q in p.iterdir()):
        raise TrainingError(f"{p} is an STL run with one model per task: give one member's directory")
    raise TrainingError(f"{p}: no {MODEL_META} + {MODEL_WEIGHTS}; give a finished training run or model directory")


def _by_task(state: dict[str, torch.Tensor], tasks: list[str]) -> dict[str, torch.Tensor]:
    """heads.<index>.* -> heads.<task name>.*, so heads match by task, whatever their order."""
    out = {}
    for key, value in state.items():
        m = _HEAD.match(key)
        out[f"heads.{tasks[int(m.group(1))]}.{key[m.end():]}" if m else key] = value
    return out


def warm_start(model: SplitModel, path: str | Path) -> tuple[int, int]:
    """Copy a trained model's tensors whose names (heads: task names) and shapes match into
    model; returns (copied, left as initialized). A new bottleneck, prior or head keeps its
    initialization."""
    source, _, _ = load_model(model_dir(path))
    theirs = _by_task(source.state_dict(), [t.name for t in source.tasks])
    names = [t.name for t in model.tasks]
    own = model.state_dict()
    usable = {}
    for key, value in _by_task(own, names).items():
        src = theirs.get(key)
        if src is not None and src.shape == value.shape:
            m = re.match(r"^heads\.([^.]+)\.", key)
            usable[f"heads.{names.index(m.group(1))}.{key[m.end():]}" if m else key] = src
    if not usable:
        raise TrainingError(f"train.init_from {path}: no tensor matches this model (another backbone?)")
    model.load_state_dict(usable, strict=False)
    return len(usable), len(own) - len(usable)


class Distiller:
    """The teacher, frozen: its softened logits as an extra loss per task that has logits
    (classification, segmentation; other kinds learn from their labels alone) and, with a
    feature weight, its shared levels as targets for the student's (hint learning, Romero et
    al. 2015; at the split, Matsubara et al.'s head network distillation)."""

    def __init__(self, path: str | Path, model: SplitModel, weight: float, temperature: float,
                 feature_weight: float = 0.0, device: torch.device | str = "cpu"):
        teacher, _, _ = load_model(model_dir(path))
        theirs = {t.name: t for t in teacher.tasks}
        wrong = [t.name for t in model.tasks if t.name not in theirs or theirs[t.name].classes != t.classes]
        if wrong:
            raise TrainingError(f"train.distill_from {path}: the teacher has no task {', '.join(wrong)} with the "
                                "same classes; distil from a model of the same tasks")
        if teacher.spec.input_size != model.spec.input_size:
            raise TrainingError(f"train.distill_from {path}: the teacher takes {teacher.spec.input_size} px images, "
                                f"this model {model.spec.input_size} px")
        if feature_weight and (teacher.spec.backbone, teacher.split_point) != (model.spec.backbone, model.split_point):
            raise TrainingError(f"train.distill_features: the teacher {path} is {teacher.spec.backbone} split at "
                                f"{teacher.split_point}, this model {model.spec.backbone} at {model.split_point}; "
                                "features distil only between the same backbone and split point")
        self.teacher = teacher.to(device).eval().requires_grad_(False)  # eval: no dropout in the targets
        self.weight, self.temperature, self.feature_weight = weight, temperature, feature_weight

    def losses(self, images: torch.Tensor, shared: list[torch.Tensor],
               raw: dict[str, dict[str, torch.Tensor]]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """(task -> weight * T^2 * KL(teacher || student) of the logits softened by T,
        feature_weight * the student's shared levels' squared error to the teacher's, each
        relative to the teacher level's mean square; None without a feature weight)."""
        with torch.no_grad():
            target_shared = self.teacher.shared(images)
            target = self.teacher.raw(target_shared)
        t = self.temperature
        out = {}
        for task, student in raw.items():
            if "logits" not in student:
                continue
            log_p = F.log_softmax(student["logits"] / t, dim=1)
            log_q = F.log_softmax(target[task]["logits"] / t, dim=1)
            kl = F.kl_div(log_p, log_q, log_target=True, reduction="none").sum(dim=1).mean()
            out[task] = self.weight * t * t * kl
        if not self.feature_weight:
            return out, None
        hint = sum(F.mse_loss(s, g) / g.square().mean().clamp_min(1e-12) for s, g in zip(shared, target_shared))
        return out, self.feature_weight * hint
