"""How per-task losses become a parameter update (kept apart from model and trainer).

Loss weightings scalarize the losses and call backward once: sum (the paper), uncertainty
(Kendall et al. 2018) and DWA (Liu et al. 2019). Any other name is a torchjd aggregator
(mtl_split_training.jacobian_descent): the update is aggregated from the per-task Jacobian of
the shared parameters.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

LOSS_WEIGHTINGS = ("sum", "uncertainty", "dwa")


class Weighting(nn.Module):
    """backward(losses, shared, model) fills .grad; its parameters (if any) are trained too."""

    def __init__(self, tasks: list[str]):
        super().__init__()
        self.tasks = list(tasks)

    def weights(self) -> dict[str, float]:
        return {t: 1.0 for t in self.tasks}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self.weights()
        return sum(w[t] * losses[t] for t in self.tasks)

    def backward(self, losses: dict[str, torch.Tensor], shared: list[torch.Tensor], model: nn.Module) -> None:
        self.combine(losses).backward()

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        """Hook for weightings that adapt per epoch."""

    def state(self) -> dict[str, Any]:
        """JSON state for checkpoints (tensors are in state_dict)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class UncertaintyWeighting(Weighting):
    """Kendall et al.: sum_t exp(-s_t) * L_t + s_t, with s_t = log sigma_t^2 learned."""

    def __init__(self, tasks: list[str]):
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)))

    def weights(self) -> dict[str, float]:
        return {t: float(math.exp(-s)) for t, s in zip(self.tasks, self.log_vars.detach().tolist())}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(torch.exp(-s) * losses[t] + s for t, s in zip(self.tasks, self.log_vars))


class DynamicWeightAverage(Weighting):
    """Liu et al.: w_t = K * softmax(r_t / T) with r_t = L_t(e-1) / L_t(e-2); 1 for two epochs."""

    def __init__(self, tasks: list[str], temperature: float = 2.0):
        super().__init__(tasks)
        self.temperature = temperature
        self.history: list[dict[str, float]] = []

    def weights(self) -> dict[str, float]:
        if len(self.history) < 2:
            return super().weights()
        prev, before = self.history[-1], self.history[-2]
        ratios = torch.tensor([prev[t] / max(before[t], 1e-12) for t in self.tasks])
        w = len(self.tasks) * torch.softmax(ratios / self.temperature, dim=0)
        return dict(zip(self.tasks, w.tolist()))

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        self.history = [*self.history[-1:], dict(mean_losses)]

    def state(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))


def make_weighting(name: str, tasks: list[str]) -> Weighting:
    """`sum`, `uncertainty`, `dwa`, or a torchjd aggregator name (`upgrad`, `mgda`, `pcgrad`, ...)."""
    key = name.lower()
    if key == "sum":
        return Weighting(tasks)
    if key == "uncertainty":
        return UncertaintyWeighting(tasks)
    if key == "dwa":
        return DynamicWeightAverage(tasks)
    from .jacobian_descent import JacobianDescent

    return JacobianDescent(tasks, key)
