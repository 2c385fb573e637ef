"""The split multi-task model: edge = stages[:k] (+ bottleneck encoder), server = (bottleneck
decoder +) stages[k:] + one head per task. An STL model is the same with a single task.
Heads read the server's feature pyramid: the decoded split tensor and every later stage's
output (classification heads the deepest level, dense heads all of them).

Saved as model.safetensors + model.json (spec, tasks, input): never pickled.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtl_split_core.bundle import InputSpec, TaskSpec

from .backbones import Init, StageInfo, build_stages, resolve_split
from .bottleneck import BottleneckDecoder, BottleneckEncoder
from .entropy_model import LEVELS, RESIDUAL_LEVELS, FactorizedPrior, coding_counts
from .errors import TrainingError
from .heads import HEADS, make_task_head

MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
SYMBOL_COUNTS = "symbol_counts"  # a buffer of entropy models, added after runs were saved without it


@dataclass(frozen=True)
class ModelSpec:
    backbone: str = "mobilenetv3_small_100"
    split: int | str = -1  # last edge stage: index (negative from the end) or timm module name
    head: str = "paper"  # a registered head (heads.HEADS: paper, pooled)
    bottleneck: int | None = None  # channels of the learned int8 bottleneck, None = raw features
    entropy: bool = False  # learn a factorized prior over the bottleneck's symbols (codec "entropy")
    bottleneck_kernel: int = 1  # the edge encoder's conv: 1 (per position) or 3 (each symbol sees its neighbours)
    bottleneck_blocks: int = 0  # residual 3x3 blocks refining the decoded split tensor on the server
    input_size: int = 64
    pretrained: bool = False  # start from timm's ImageNet weights (timm's hub: needs internet or its cache)
    pretrained_file: str | None = None  # start from a local timm checkpoint, loaded by timm the same way
    weights: str | None = None  # copy the matching tensors of any local state dict; None = random init
    decoder_channels: int = 48  # width of each dense task's pyramid decoder

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise TrainingError(f"model.head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.bottleneck is not None and not 1 <= int(self.bottleneck) <= 4096:
            raise TrainingError(f"model.bottleneck must be a channel count in 1..4096 or null, got {self.bottleneck}")
        if int(self.bottleneck_kernel) not in (1, 3):
            raise TrainingError(f"model.bottleneck_kernel must be 1 or 3, got {self.bottleneck_kernel}")
        if not 0 <= int(self.bottleneck_blocks) <= 8:
            raise TrainingError(f"model.bottleneck_blocks must be in 0..8, got {self.bottleneck_blocks}")
        if (int(self.bottleneck_kernel) != 1 or int(self.bottleneck_blocks)) and not self.bottleneck:
            raise TrainingError("model.bottleneck_kernel and model.bottleneck_blocks shape the bottleneck: "
                                "set model.bottleneck (e.g. 8) too")
        if self.entropy and not self.bottleneck:
            raise TrainingError("model.entropy codes the bottleneck's symbols: set model.bottleneck (e.g. 16) too")
        if self.input_size < 16:
            raise TrainingError(f"input size must be at least 16, got {self.input_size}")
        if not 4 <= int(self.decoder_channels) <= 1024:
            raise TrainingError(f"model.decoder_channels must be in 4..1024, got {self.decoder_channels}")


class SplitModel(nn.Module):
    """forward(images) -> {task: output}; `edge` and `server_part()` are what the bundle exports.

    `edge` and `server` are fresh Sequential views over the registered stages; the state dict
    (stages.*, encoder.*, decoder.*, heads.*) does not depend on the split point, so a model
    re-cut at another stage loads the same weights."""

    def __init__(self, spec: ModelSpec, tasks: tuple[TaskSpec, ...], load_pretrained: bool = True):
        super().__init__()
        if not tasks:
            raise TrainingError("a model needs at least one task")
        self.spec, self.tasks = spec, tuple(tasks)
        init = Init(bool(spec.pretrained), spec.pretrained_file, spec.weights) if load_pretrained else Init()
        stages, infos = build_stages(spec.backbone, init)
        self.split_index = resolve_split(infos, spec.split)
        self.stage_infos: list[StageInfo] = infos
        # Stages are registered once, whatever the split, so weights load across split points.
        self.stages = nn.ModuleList(stages)
        channels = infos[self.split_index].channels
        width = int(spec.bottleneck or 0)
        self.encoder = BottleneckEncoder(channels, width, int(spec.bottleneck_kernel)) if width else None
        self.decoder = BottleneckDecoder(width, channels, int(spec.bottleneck_blocks)) if width else None
        # The rate model (trained; never part of the ONNX files) and the statistics the exported
        # integer tables come from: symbols, and their frame-to-frame changes (temporal coding).
        self.prior = FactorizedPrior(int(spec.bottleneck)) if spec.entropy else None
        if spec.entropy:
            self.register_buffer(SYMBOL_COUNTS, torch.zeros(int(spec.bottleneck), 2 * LEVELS + 1, dtype=torch.float64))
            self.register_buffer("residual_counts", torch.zeros(int(spec.bottleneck), 2 * RESIDUAL_LEVELS + 1,
                                                                dtype=torch.float64))
        self.dense = any(t.dense for t in self.tasks)
        self.feature_shape, level_shapes = self._probe_shapes(spec.input_size)
        stride = infos[self.split_index].reduction
        self.heads = nn.ModuleList(make_task_head(t, spec.head, level_shapes, stride, spec.input_size,
                                                  int(spec.decoder_channels)) for t in self.tasks)

    @torch.no_grad()
    def fit_coding_counts(self, batches: Iterable[torch.Tensor], seed: int = 0) -> None:
        """Count the statistics of the entropy tables on held-out frames (after training)."""
        symbol_counts, residual_counts = coding_counts(self.edge, batches, self.symbol_counts.shape[0], seed=seed)
        self.symbol_counts.copy_(torch.from_numpy(symbol_counts))
        self.residual_counts.copy_(torch.from_numpy(residual_counts))

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """load_state_dict, also of runs saved before symbol counts were kept (their tables
        then come from the learned prior alone)."""
        if self.prior is not None and SYMBOL_COUNTS not in state:
            state = {**state, SYMBOL_COUNTS: torch.zeros_like(self.symbol_counts)}
        self.load_state_dict(state)

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
        """Split tensor -> the deepest representation: decoder + stages[k+1:]."""
        return self._view([self.decoder, *self.stages[self.split_index + 1:]])

    def pyramid(self, features: torch.Tensor) -> list[torch.Tensor]:
        return server_pyramid(features, self.decoder, self.stages[self.split_index + 1:], self.dense)

    @property
    def split_point(self) -> str:
        return self.stage_infos[self.split_index].name

    @torch.no_grad()
    def _probe_shapes(self, size: int) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
        was_training = self.training
        self.eval()
        features = self.edge(torch.zeros(1, 3, size, size))
        levels = self.pyramid(features)
        self.train(was_training)
        return tuple(features.shape[1:]), [tuple(level.shape[1:]) for level in levels]

    def shared(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The representation the heads read (the last shared tensors, for Jacobian descent)."""
        return self.pyramid(self.edge(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.shared(images)
        return {t.name: head(z) for t, head in zip(self.tasks, self.heads)}

    def raw(self, shared: list[torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        """Every head's raw outputs (what the losses read) on the shared representation."""
        return {t.name: head.raw(shared) for t, head in zip(self.tasks, self.heads)}

    def server_part(self) -> "ServerPart":
        return ServerPart(self)

    def head_parameters(self) -> list[list[nn.Parameter]]:
        return [list(h.parameters()) for h in self.heads]

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.edge.parameters(), *self.server.parameters()]

    def jacobian_parts(self, shared: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[nn.Parameter],
                                                                   list[list[nn.Parameter]]]:
        """(features, shared parameters, per-task parameters) for Jacobian descent. The features
        must not depend on each other, so with dense heads (which read the whole pyramid) they
        are the decoded split tensor alone: the per-task gradients are aggregated there, and
        the server's stages after the split get the sum of the tasks' gradients."""
        if not self.dense:
            return shared, self.shared_parameters(), self.head_parameters()
        after = list(self.stages[self.split_index + 1:].parameters())
        before = [*self.edge.parameters(), *(self.decoder.parameters() if self.decoder is not None else [])]
        return shared[:1], before, [[*head, *after] for head in self.head_parameters()]


class ServerPart(nn.Module):
    """Decoded features -> every task's output, as a tuple in task order (ONNX outputs)."""

    def __init__(self, model: SplitModel):
        super().__init__()
        self.decoder, self.stages, self.heads = model.decoder, model.stages[model.split_index + 1:], model.heads
        self.dense = model.dense
        self.train(model.training)  # a fresh Module says training=True; exporters restore that mode

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z = server_pyramid(features, self.decoder, self.stages, self.dense)
        return tuple(head(z) for head in self.heads)


def server_pyramid(features: torch.Tensor, decoder: nn.Module | None, stages: nn.ModuleList,
                   dense: bool) -> list[torch.Tensor]:
    """Split tensor -> what the heads read: with dense heads every level from the decoded split
    tensor to the deepest (finest first), else the deepest alone."""
    x = features if decoder is None else decoder(features)
    levels = [x]
    for stage in stages:
        x = stage(x)
        levels.append(x)
    return levels if dense else levels[-1:]


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
    model.load_weights(load_file(str(weights_path)))
    input_spec = InputSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["input"].items()})
    return model.eval(), input_spec, meta.get("extra", {})
