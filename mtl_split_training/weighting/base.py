"""The Weighting contract: how per-task losses become a parameter update, and the registry
every weighting is chosen from (`train.weighting`)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..registry import Registry


class Weighting(nn.Module):
    """backward(losses, shared, model) fills .grad; its parameters (if any) are trained too.
    The base class is the paper's: the unweighted sum of the task losses."""

    def __init__(self, tasks: list[str]):
        super().__init__()
        self.tasks = list(tasks)

    def weights(self) -> dict[str, float]:
        return {t: 1.0 for t in self.tasks}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self.weights()
        return sum(w[t] * losses[t] for t in self.tasks)

    def backward(self, losses: dict[str, torch.Tensor], shared: list[torch.Tensor], model: nn.Module,
                 extra: torch.Tensor | None = None) -> None:
        """extra: a loss outside the weighting (the rate term, a feature hint), added as is; one backward pass."""
        total = self.combine(losses)
        (total if extra is None else total + extra).backward()

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        """Hook for weightings that adapt per epoch."""

    def state(self) -> dict[str, Any]:
        """JSON state for checkpoints (tensors are in state_dict)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


# name -> factory(task names) -> Weighting
WEIGHTINGS: Registry = Registry("weighting", "train.weighting")
WEIGHTINGS.add("sum", Weighting, "unweighted sum of the task losses (the paper's)")
