"""Task weighting: loss scalarizers and torchjd Jacobian descent on a real (tiny) split model."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchjd")
import torch.nn.functional as F  # noqa: E402

from mtl_split_core.bundle import TaskSpec  # noqa: E402
from mtl_split_training.errors import TrainingError  # noqa: E402
from mtl_split_training.models import ModelSpec, SplitModel  # noqa: E402
from mtl_split_training.weighting import (  # noqa: E402
    WEIGHTINGS, DynamicWeightAverage, UncertaintyWeighting, make_weighting)

pytestmark = pytest.mark.training
TASKS = (TaskSpec("a", ("0", "1", "2")), TaskSpec("b", ("0", "1")))


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    return torch.randn(4, 3, 32, 32), {"a": torch.tensor([0, 1, 2, 0]), "b": torch.tensor([1, 0, 1, 0])}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SplitModel(ModelSpec(input_size=32, head="pooled"), TASKS).eval()  # eval: no dropout/BN noise


def _grads(weighting_name: str, batch, model: SplitModel) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    weighting = make_weighting(weighting_name, [t.name for t in TASKS])
    images, labels = batch
    shared = model.shared(images)
    losses = {t.name: F.cross_entropy(h(shared), labels[t.name]) for t, h in zip(TASKS, model.heads)}
    weighting.backward(losses, shared, model)
    weights = weighting.weights()
    assert set(weights) == {t.name for t in TASKS} and all(math.isfinite(w) for w in weights.values())
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", WEIGHTINGS.names())
def test_every_weighting_fills_every_gradient(name, batch, model):
    grads = _grads(name, batch, model)
    assert set(grads) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert any(g.abs().sum() > 0 for n, g in grads.items() if not n.startswith("heads."))


def test_torchjd_mean_is_half_the_summed_shared_gradient(batch, model):
    summed = _grads("sum", batch, model)
    mean = _grads("mean", batch, model)
    for name, g in summed.items():
        expected = g if name.startswith("heads.") else g / 2  # heads: own gradient; shared: averaged rows
        torch.testing.assert_close(mean[name], expected, atol=1e-6, rtol=1e-4)


def test_uncertainty_weighting_learns_log_variances():
    w = UncertaintyWeighting(["a", "b"])
    losses = {"a": torch.tensor(2.0, requires_grad=True), "b": torch.tensor(0.5, requires_grad=True)}
    total = w.combine(losses)
    assert math.isclose(float(total.detach()), 2.5)  # exp(0) * L + 0 at init
    total.backward()
    torch.testing.assert_close(w.log_vars.grad, torch.tensor([1 - 2.0, 1 - 0.5]))


def test_dwa_weights_follow_loss_ratios():
    w = DynamicWeightAverage(["a", "b"], temperature=2.0)
    assert w.weights() == {"a": 1.0, "b": 1.0}
    w.end_epoch({"a": 1.0, "b": 1.0})
    w.end_epoch({"a": 1.0, "b": 0.5})  # b's loss falls faster -> a gets more weight
    ra, rb = 1.0, 0.5
    expected_a = 2 * math.exp(ra / 2) / (math.exp(ra / 2) + math.exp(rb / 2))
    assert math.isclose(w.weights()["a"], expected_a, rel_tol=1e-6)
    assert math.isclose(sum(w.weights().values()), 2.0, rel_tol=1e-6)
    restored = DynamicWeightAverage(["a", "b"])
    restored.load_state(w.state())
    assert restored.weights() == w.weights()


def test_unknown_weighting_lists_the_choices():
    with pytest.raises(TrainingError, match="upgrad"):
        make_weighting("magic", ["a", "b"])
