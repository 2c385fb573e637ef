"""Resumable training state as safetensors (model, weighting and optimizer tensors) + JSON
(epoch, optimizer hyper-parameters, scheduler, history): no pickle anywhere."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from .models import SplitModel

CHECKPOINT_TENSORS = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"


def save_checkpoint(member_dir: Path, model: nn.Module, weighting: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, epoch: int, history: list[dict[str, Any]], weighting_state: dict[str, Any]) -> None:
    """Write both files to temporaries, then rename: a crash never leaves a half checkpoint."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"weighting.{k}": v for k, v in weighting.state_dict().items()}
    optim = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in optim["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    meta = {
        "epoch": epoch,
        "param_groups": optim["param_groups"],
        "optim_scalars": scalars,
        "scheduler": scheduler.state_dict(),
        "weighting": weighting_state,
        "history": history,
    }
    tmp_tensors, tmp_meta = member_dir / (CHECKPOINT_TENSORS + ".tmp"), member_dir / (CHECKPOINT_META + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp_tensors))
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_tensors, member_dir / CHECKPOINT_TENSORS)
    os.replace(tmp_meta, member_dir / CHECKPOINT_META)


def load_checkpoint(member_dir: Path, model: SplitModel, weighting: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> dict[str, Any] | None:
    """Restore in place; returns the JSON part (epoch, history, weighting), None without a checkpoint."""
    from safetensors.torch import load_file

    if not (member_dir / CHECKPOINT_META).is_file():
        return None
    meta = json.loads((member_dir / CHECKPOINT_META).read_text())
    tensors = load_file(str(member_dir / CHECKPOINT_TENSORS))
    device = next(model.parameters()).device

    def section(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    model.load_weights(section("model."))
    weighting.load_state_dict(section("weighting."))
    state: dict[int, dict[str, Any]] = {}
    for key, value in section("optim.").items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value.to(device) if name != "step" else value
    for idx, values in meta["optim_scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    return meta
