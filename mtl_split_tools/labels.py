"""Ground truth for an evaluation, checked against the bundle before anything runs.

Labels come from the bag (topics.GROUND_TRUTH, by class name) and/or from a sidecar table:
a CSV/TSV with a `frame` column (0-based position in the camera stream, in stamp order) or a
`stamp` column (the image's header stamp: integer nanoseconds, or seconds with up to nine
decimals), and one column per classification task holding class names (an empty cell leaves
that frame unlabelled for that task). A sidecar column replaces the bag's labels of its task.

Class names are matched by name, so a label set for another model (cat/dog against a digits
bundle) is one clear error instead of a meaningless accuracy.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from mtl_split_core.bundle import Manifest
from mtl_split_core.errors import MtlSplitError
from mtl_split_core.tables import read_rows

from .bags import Frame

FRAME_COLUMN, STAMP_COLUMN = "frame", "stamp"
SHOWN = 5  # names / rows quoted in an error


class LabelError(MtlSplitError):
    """Labels that do not fit the bag or the bundle."""


@dataclass
class Truth:
    """Labels per frame stamp in the bundle's terms (class indices; dense arrays / Boxes)."""

    by_stamp: dict[int, dict[str, Any]] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)  # task -> "bag" | "sidecar"
    ignored: list[str] = field(default_factory=list)  # label tasks the bundle does not have
    notes: list[str] = field(default_factory=list)


def _quote(values: Any) -> str:
    values = list(values)
    more = f" (+{len(values) - SHOWN} more)" if len(values) > SHOWN else ""
    return ", ".join(repr(v) for v in values[:SHOWN]) + more


def parse_stamp(text: str) -> int:
    """'1700000000123456789' (ns) or '1700000000.123456789' (s) -> ns, exactly."""
    text = text.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise LabelError(f"stamp {text!r} is neither integer nanoseconds nor seconds") from None
    ns = value if "." not in text and "e" not in text.lower() else value * 1_000_000_000
    if ns != ns.to_integral_value() or ns < 0:
        raise LabelError(f"stamp {text!r} is not a whole number of nanoseconds")
    return int(ns)


def read_sidecar(path: Path, frames: list[Frame]) -> tuple[dict[int, dict[str, str]], list[str]]:
    """{frame index: {task: class name}} from a sidecar table, and notes for the report."""
    rows = read_rows(Path(path))
    columns = list(rows[0])
    keys = [c for c in (FRAME_COLUMN, STAMP_COLUMN) if c in columns]
    if len(keys) != 1:
        raise LabelError(f"{path}: needs exactly one of the columns {FRAME_COLUMN!r} (frame index from 0) or "
                         f"{STAMP_COLUMN!r} (header stamp) to key its rows; it has {', '.join(columns)}")
    key = keys[0]
    by_stamp = {f.stamp_ns: f.index for f in frames}
    indices = {f.index for f in frames}
    out: dict[int, dict[str, str]] = {}
    unmatched = []
    for n, row in enumerate(rows, start=2):
        cell = (row.get(key) or "").strip()
        try:
            index = int(cell) if key == FRAME_COLUMN else by_stamp.get(parse_stamp(cell), -1)
        except ValueError:
            raise LabelError(f"{path}:{n}: {key} {cell!r} is not a frame index") from None
        if index not in indices:
            unmatched.append(n)
            continue
        if index in out:
            raise LabelError(f"{path}:{n}: a second row for {key} {cell}")
        out[index] = {c: v.strip() for c, v in row.items() if c != key and c is not None and v and v.strip()}
    if not out:
        raise LabelError(f"{path}: none of its {len(rows)} rows matches a frame of the bag by {key} "
                         f"(the bag's first frame: index 0, stamp {frames[0].stamp_ns})")
    notes = [f"{path}: {len(unmatched)} row(s) match no replayed frame (rows {_quote(unmatched)})"] if unmatched else []
    return out, notes


def resolve(manifest: Manifest, frames: list[Frame], sidecar: dict[int, dict[str, str]] | None = None) -> Truth:
    """The labels of every frame as the bundle numbers them; LabelError when a label names a
    class the bundle's task does not have."""
    truth = Truth()
    tasks = {t.name: t for t in manifest.tasks}
    sidecar = sidecar or {}
    sidecar_tasks = sorted({t for labels in sidecar.values() for t in labels})
    for task in sidecar_tasks:
        if task in tasks and tasks[task].dense:
            raise LabelError(f"sidecar column {task!r}: {task} is a {tasks[task].kind} task; dense labels come "
                             "from the bag's ground-truth topics, a sidecar holds class names")
    unknown: dict[str, dict[Any, list[int]]] = defaultdict(lambda: defaultdict(list))
    for f in frames:
        own = {t: v for t, v in f.labels.items() if t not in sidecar_tasks}  # a sidecar column replaces the task's
        labels = {**own, **sidecar.get(f.index, {})}
        for name, label in labels.items():
            if name not in tasks:
                if name not in truth.ignored:
                    truth.ignored.append(name)
                continue
            truth.source[name] = "sidecar" if name in sidecar_tasks else "bag"
            task = tasks[name]
            if task.dense:
                truth.by_stamp.setdefault(f.stamp_ns, {})[name] = label
            elif isinstance(label, str) and label in task.classes:
                truth.by_stamp.setdefault(f.stamp_ns, {})[name] = task.classes.index(label)
            elif not isinstance(label, str) and 0 <= int(label) < task.num_classes:
                truth.by_stamp.setdefault(f.stamp_ns, {})[name] = int(label)
            else:
                unknown[name][label].append(f.index)
    for name, labels in unknown.items():
        task = tasks[name]
        frames_hit = sorted(i for idx in labels.values() for i in idx)
        raise LabelError(
            f"labels of task {name!r} name class(es) {_quote(labels)} (frames {_quote(frames_hit)}) that bundle "
            f"{manifest.model_id}'s {name!r} does not have (its classes: {_quote(task.classes)}): these labels are "
            "for another model; evaluate with the bundle trained on them, or fix the label names")
    if truth.ignored:
        truth.notes.append(f"labels of task(s) {', '.join(truth.ignored)} ignored: the bundle predicts "
                           f"{', '.join(manifest.task_names)}")
    return truth
