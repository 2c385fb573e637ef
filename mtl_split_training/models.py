"""The split multi-task model: edge = stages[:k] (+ bottleneck encoder), server = (bottleneck
decoder +) stages[k:] + one head per task. An STL model is the same with a single task.

Saved as model.safetensors + model.json (spec, tasks, input): never pickled.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtl_split_core.bundle import InputSpec, TaskSpec

from .backbones import StageInfo, build_stages, resolve_split
from .bottleneck import BottleneckDecoder, BottleneckEncoder
from .errors import TrainingError
from .heads import HEAD_KINDS, make_head

MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"


@dataclass(frozen=True)
class ModelSpec:
    backbone: str = "mobilenetv3_small_100"
    split: int | str = -1  # last edge stage: index (negative from the end) or timm module name
    head: str = "paper"  # paper | pooled
    bottleneck: int | None = None  # channels of the learned int8 bottleneck, None = raw features
    input_size: int = 64
    weights: str | None = None  # local pretrained timm weights for the backbone; None = random init

    def __post_init__(self) -> None:
        if self.head not in HEAD_KINDS:
            raise TrainingError(f"model.head must be one of {', '.join(HEAD_KINDS)}, got {self.head!r}")
        if self.bottleneck is not None and not 1 <= int(self.bottleneck) <= 4096:
            raise TrainingError(f"model.bottleneck must be a channel count in 1..4096 or null, got {self.bottleneck}")
        if self.input_size < 16:
            raise TrainingError(f"input size must be at least 16, got {self.input_size}")


class SplitModel(nn.Module):
    """forward(images) -> {task: logits}; `edge` and `server_part()` are what the bundle exports.

    `edge` and `server` are fresh Sequential views over the registered stages; the state dict
    (stages.*, encoder.*, decoder.*, heads.*) does not depend on the split point, so a model
    re-cut at another stage loads the same weights."""

    def __init__(self, spec: ModelSpec, tasks: tuple[TaskSpec, ...], load_pretrained: bool = True):
        super().__init__()
        if not tasks:
            raise TrainingError("a model needs at least one task")
        self.spec, self.tasks = spec, tuple(tasks)
        stages, infos = build_stages(spec.backbone, spec.weights if load_pretrained else None)
        self.split_index = resolve_split(infos, spec.split)
        self.stage_infos: list[StageInfo] = infos
        # Stages are registered once, whatever the split, so weights load across split points.
        self.stages = nn.ModuleList(stages)
        channels = infos[self.split_index].channels
        self.encoder = BottleneckEncoder(channels, int(spec.bottleneck)) if spec.bottleneck else None
        self.decoder = BottleneckDecoder(int(spec.bottleneck), channels) if spec.bottleneck else None
        self.feature_shape, trunk_shape = self._probe_shapes(spec.input_size)
        self.heads = nn.ModuleList(make_head(spec.head, trunk_shape, t.num_classes) for t in self.tasks)

    def _view(self, modules: list[nn.Module | None]) -> nn.Sequential:
        """A Sequential over existing submodules, in this model's train/eval mode (exporters
        restore the mode of the module they get, recursively)."""
        return nn.Sequential(*[m for m in modules if m is not None]).train(self.training)

    @property
    def edge(self) -> nn.Sequential:
        """Image -> split tensor (what backbone.onnx computes): stages[:k+1] + encoder."""
        return self._view([*self.stages[:self.split_index + 1], self.encoder])

    @property
    def server(self) -> nn.Sequential:
        """Split tensor -> the representation the heads read: decoder + stages[k+1:]."""
        return self._view([self.decoder, *self.stages[self.split_index + 1:]])

    @property
    def split_point(self) -> str:
        return self.stage_infos[self.split_index].name

    @torch.no_grad()
    def _probe_shapes(self, size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        was_training = self.training
        self.eval()
        features = self.edge(torch.zeros(1, 3, size, size))
        trunk = self.server(features)
        self.train(was_training)
        return tuple(features.shape[1:]), tuple(trunk.shape[1:])

    def shared(self, images: torch.Tensor) -> torch.Tensor:
        """The representation every head reads (last shared tensor, for Jacobian descent)."""
        return self.server(self.edge(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.shared(images)
        return {t.name: head(z) for t, head in zip(self.tasks, self.heads)}

    def server_part(self) -> "ServerPart":
        return ServerPart(self)

    def head_parameters(self) -> list[list[nn.Parameter]]:
        return [list(h.parameters()) for h in self.heads]

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.edge.parameters(), *self.server.parameters()]


class ServerPart(nn.Module):
    """Decoded features -> logits of every task, as a tuple in task order (ONNX outputs)."""

    def __init__(self, model: SplitModel):
        super().__init__()
        self.server, self.heads = model.server, model.heads
        self.train(model.training)  # a fresh Module says training=True; exporters restore that mode

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z = self.server(features)
        return tuple(head(z) for head in self.heads)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def save_model(model: SplitModel, out_dir: Path, input_spec: InputSpec, extra: dict[str, Any] | None = None) -> None:
    """model.safetensors (weights) + model.json (everything needed to rebuild and export it)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / MODEL_WEIGHTS))
    meta = {
        "spec": dataclasses.asdict(model.spec),
        "tasks": [{"name": t.name, "classes": list(t.classes), "kind": t.kind} for t in model.tasks],
        "input": dataclasses.asdict(input_spec),
        "extra": extra or {},
    }
    (out_dir / MODEL_META).write_text(json.dumps(meta, indent=2) + "\n")


def load_model(model_dir: Path) -> tuple[SplitModel, InputSpec, dict[str, Any]]:
    """Rebuild a saved model (no pickle): returns model (eval mode), its input spec and extra."""
    from safetensors.torch import load_file

    meta_path, weights_path = model_dir / MODEL_META, model_dir / MODEL_WEIGHTS
    if not meta_path.is_file() or not weights_path.is_file():
        raise TrainingError(f"{model_dir}: no {MODEL_META} + {MODEL_WEIGHTS}; is this a finished training run?")
    meta = json.loads(meta_path.read_text())
    spec = ModelSpec(**meta["spec"])
    tasks = tuple(TaskSpec(t["name"], tuple(t["classes"]), t.get("kind", "classification")) for t in meta["tasks"])
    model = SplitModel(spec, tasks, load_pretrained=False)
    model.load_state_dict(load_file(str(weights_path)))
    input_spec = InputSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["input"].items()})
    return model.eval(), input_spec, meta.get("extra", {})
