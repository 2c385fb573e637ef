"""Accuracy, macro-F1, confusion matrices and latency percentiles (numpy only)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = (50, 90, 99)


def confusion(truth: Sequence[int], pred: Sequence[int], num_classes: int) -> np.ndarray:
    """counts[true class, predicted class]."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(truth, int), np.asarray(pred, int)), 1)
    return m


def accuracy(m: np.ndarray) -> float:
    total = m.sum()
    return float(np.trace(m) / total) if total else float("nan")


def macro_f1(m: np.ndarray) -> float:
    """Mean F1 over the classes that occur in truth or predictions."""
    tp = np.diag(m).astype(float)
    support, predicted = m.sum(axis=1), m.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return float("nan")
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    return float(f1[present].mean())


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """{'p50':…, 'p90':…, 'p99':…, 'mean':…} in the values' unit; None when empty."""
    v = np.asarray(values, float)
    if not len(v):
        return {f"p{p}": None for p in PERCENTILES} | {"mean": None}
    return {f"p{p}": round(float(np.percentile(v, p)), 3) for p in PERCENTILES} | {"mean": round(float(v.mean()), 3)}


def task_metrics(truth: Sequence[int], pred: Sequence[int], classes: Sequence[str]) -> dict:
    m = confusion(truth, pred, len(classes))
    return {"accuracy": round(accuracy(m), 4), "macro_f1": round(macro_f1(m), 4), "frames": int(m.sum()),
            "classes": list(classes), "confusion": m.tolist()}
