"""Uncertainty weighting (Kendall et al. 2018)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import WEIGHTINGS, Weighting


@WEIGHTINGS.register("uncertainty", "learned homoscedastic-uncertainty weights (Kendall et al. 2018)")
class UncertaintyWeighting(Weighting):
    """sum_t exp(-s_t) * L_t + s_t, with s_t = log sigma_t^2 learned."""

    def __init__(self, tasks: list[str]):
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)))

    def weights(self) -> dict[str, float]:
        return {t: float(math.exp(-s)) for t, s in zip(self.tasks, self.log_vars.detach().tolist())}

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(torch.exp(-s) * losses[t] + s for t, s in zip(self.tasks, self.log_vars))
