"""torchjd Jacobian descent as a Weighting: the per-task gradients of the shared parameters are
aggregated (UPGrad, MGDA, PCGrad, ...) instead of summed. torchjd 0.18 API:
`autojac.mtl_backward` fills `.jac` of the shared parameters and `.grad` of each head, then
`autojac.jac_to_grad` aggregates the `.jac` rows into `.grad`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .errors import TrainingError
from .weighting import LOSS_WEIGHTINGS, Weighting


def _aggregators(num_tasks: int) -> dict[str, Callable[[], object]]:
    from torchjd import aggregation as agg

    return {
        "upgrad": agg.UPGrad,
        "mgda": agg.MGDA,
        "pcgrad": agg.PCGrad,
        "dualproj": agg.DualProj,
        "imtlg": agg.IMTLG,
        "aligned_mtl": agg.AlignedMTL,
        "config": agg.ConFIG,
        "graddrop": agg.GradDrop,
        "cagrad": lambda: agg.CAGrad(c=0.5),
        "nashmtl": lambda: agg.NashMTL(n_tasks=num_tasks),
        "mean": agg.Mean,
    }


class JacobianDescent(Weighting):
    def __init__(self, tasks: list[str], aggregator: str):
        super().__init__(tasks)
        choices = _aggregators(len(tasks))
        if aggregator not in choices:
            raise TrainingError(
                f"unknown weighting {aggregator!r}: use one of {', '.join(LOSS_WEIGHTINGS + tuple(choices))}"
            )
        self.name = aggregator
        self.aggregator = choices[aggregator]()
        self.last_weights: list[float] | None = None

    def weights(self) -> dict[str, float]:
        if self.last_weights is None:
            return super().weights()
        return dict(zip(self.tasks, self.last_weights))

    def backward(self, losses: dict[str, torch.Tensor], shared: list[torch.Tensor], model: nn.Module) -> None:
        from torchjd.autojac import jac_to_grad, mtl_backward

        features, shared_params, tasks_params = model.jacobian_parts(shared)
        shared_params = [p for p in shared_params if p.requires_grad]
        # retain_graph: with dense heads the tasks share the server's stages after the split,
        # and each task's gradient walks back through them (the graph is freed with the batch).
        mtl_backward([losses[t] for t in self.tasks], features=features, tasks_params=tasks_params,
                     shared_params=shared_params, retain_graph=len(features) < len(shared))
        weights = jac_to_grad(shared_params, self.aggregator)
        if isinstance(weights, torch.Tensor):
            self.last_weights = weights.detach().cpu().tolist()
