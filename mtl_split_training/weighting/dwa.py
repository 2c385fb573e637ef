"""Dynamic Weight Average (Liu et al. 2019)."""
from __future__ import annotations

from typing import Any

import torch

from .base import WEIGHTINGS, Weighting


@WEIGHTINGS.register("dwa", "Dynamic Weight Average: weights follow each loss's rate of descent (Liu et al. 2019)")
class DynamicWeightAverage(Weighting):
    """w_t = K * softmax(r_t / T) with r_t = L_t(e-1) / L_t(e-2); 1 for two epochs."""

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
