"""torchjd Jacobian descent as weightings: the per-task gradients of the shared parameters are
aggregated (UPGrad, MGDA, PCGrad, ...) instead of summed. torchjd 0.18 API:
`autojac.mtl_backward` fills `.jac` of the shared parameters and `.grad` of each head, then
`autojac.jac_to_grad` aggregates the `.jac` rows into `.grad`.

Every aggregator below is registered as a weighting under its name; the ones that solve a
convex program need torchjd's extras (cvxpy, ecos, clarabel; requirements/training.txt).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import ModuleType

import torch
from torch import nn

from .base import WEIGHTINGS, Weighting

# name -> (how to build it from torchjd.aggregation for n tasks, summary)
AGGREGATORS: dict[str, tuple[Callable[[ModuleType, int], object], str]] = {
    "upgrad": (lambda agg, n: agg.UPGrad(),
               "UPGrad: each task gradient projected onto the dual cone, averaged: conflicts with no task "
               "(Quinton & Rey 2024)"),
    "mgda": (lambda agg, n: agg.MGDA(), "MGDA: min-norm point of the task gradients' convex hull (Sener & Koltun 2018)"),
    "pcgrad": (lambda agg, n: agg.PCGrad(), "PCGrad: conflicting components projected away (Yu et al. 2020)"),
    "dualproj": (lambda agg, n: agg.DualProj(), "DualProj: the mean projected onto the dual cone of the task gradients"),
    "imtlg": (lambda agg, n: agg.IMTLG(), "IMTL-G: equal projections onto every task gradient (Liu et al. 2021)"),
    "aligned_mtl": (lambda agg, n: agg.AlignedMTL(),
                    "Aligned-MTL: the gradient matrix's condition number made one (Senushkin et al. 2023)"),
    "config": (lambda agg, n: agg.ConFIG(),
               "ConFIG: conflict-free, equal angle to every task gradient (Liu et al. 2024)"),
    "graddrop": (lambda agg, n: agg.GradDrop(), "GradDrop: components dropped by sign consistency (Chen et al. 2020)"),
    "cagrad": (lambda agg, n: agg.CAGrad(c=0.5),
               "CAGrad c=0.5: best worst-task improvement near the mean (Liu et al. 2021)"),
    "nashmtl": (lambda agg, n: agg.NashMTL(n_tasks=n),
                "Nash-MTL: Nash bargaining over the task gradients (Navon et al. 2022)"),
    "fairgrad": (lambda agg, n: agg.FairGrad(alpha=1.0),
                 "FairGrad alpha=1: proportionally fair task improvements (Ban & Ji 2024)"),
    "random": (lambda agg, n: agg.Random(), "Random weights every step (RLW, Lin et al. 2022)"),
    "mean": (lambda agg, n: agg.Mean(), "mean of the task gradients (the sum divided by the number of tasks)"),
}


class JacobianDescent(Weighting):
    def __init__(self, tasks: list[str], aggregator: str):
        super().__init__(tasks)
        from torchjd import aggregation

        build, _ = AGGREGATORS[aggregator]
        self.name = aggregator
        self.aggregator = build(aggregation, len(tasks))
        self.last_weights: list[float] | None = None

    def weights(self) -> dict[str, float]:
        if self.last_weights is None:
            return super().weights()
        return dict(zip(self.tasks, self.last_weights))

    def backward(self, losses: dict[str, torch.Tensor], shared: list[torch.Tensor], model: nn.Module,
                 extra: torch.Tensor | None = None) -> None:
        from torchjd.autojac import jac_to_grad, mtl_backward

        if extra is not None:  # the rate term and a hint are not tasks: their gradient is added, not aggregated
            extra.backward(retain_graph=True)

        features, shared_params, tasks_params = model.jacobian_parts(shared)
        shared_params = [p for p in shared_params if p.requires_grad]
        # retain_graph: with dense heads the tasks share the server's stages after the split,
        # and each task's gradient walks back through them (the graph is freed with the batch).
        mtl_backward([losses[t] for t in self.tasks], features=features, tasks_params=tasks_params,
                     shared_params=shared_params, retain_graph=len(features) < len(shared))
        weights = jac_to_grad(shared_params, self.aggregator)
        if isinstance(weights, torch.Tensor):
            self.last_weights = weights.detach().cpu().tolist()


for _name, (_, _summary) in AGGREGATORS.items():
    WEIGHTINGS.add(_name, partial(JacobianDescent, aggregator=_name), f"torchjd {_summary}")
