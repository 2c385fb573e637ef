"""How per-task losses become a parameter update (kept apart from model and trainer), one
weighting per module as LibMTL does: loss scalarizers that call backward once (`sum`,
`uncertainty`, `dwa`) and torchjd aggregators of the per-task Jacobian (`jacobian_descent`).
WEIGHTINGS lists them all (`mtl-split list weightings`)."""
from __future__ import annotations

# Each registers its weighting(s); `mtl-split list` shows them in this order.
from . import uncertainty, dwa, jacobian_descent  # noqa: F401, I001
from .base import WEIGHTINGS, Weighting
from .dwa import DynamicWeightAverage
from .uncertainty import UncertaintyWeighting


def make_weighting(name: str, tasks: list[str]) -> Weighting:
    """A registered weighting (`sum`, `uncertainty`, `dwa`, `upgrad`, ...) for these tasks."""
    return WEIGHTINGS.get(name.lower())(tasks)


__all__ = ["WEIGHTINGS", "Weighting", "DynamicWeightAverage", "UncertaintyWeighting", "make_weighting"]
