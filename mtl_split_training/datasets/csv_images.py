"""A labelled image folder (`--data csv:PATH`): a CSV/TSV with an image column and one column
per classification task, image paths relative to the file; dense labels (masks, depth, COCO
boxes) in the reserved columns of csv_dense. How MEDIC and FACES map onto it: docs/training.md.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from mtl_split_core.bundle import TaskSpec
from mtl_split_core.tables import read_rows

from ..errors import TrainingError
from .base import (
    DATASETS,
    SPLITS,
    DataOptions,
    DataSource,
    Label,
    LabelledImages,
    cap_splits,
    fit_square,
    seeded_split_indices,
)
from .csv_dense import DENSE_COLUMNS, DenseColumns

IMAGE_COLUMN = "image"
SPLIT_COLUMN = "split"
_SPLIT_ALIASES = {"train": "train", "val": "val", "dev": "val", "validation": "val", "test": "test"}
# A class with fewer examples than this is too few to learn or to score: the user hears of it.
HANDFUL = 5
SHOWN = 6  # rows / classes quoted in a notice


def _is_integer(value: str) -> bool:
    return value.lstrip("-").isdigit()


def _class_names(values: list[str]) -> tuple[str, ...]:
    """Sorted distinct labels: numerically when all are integers, else as text."""
    distinct = set(values)
    if all(_is_integer(v) for v in distinct):
        return tuple(sorted(distinct, key=int))
    return tuple(sorted(distinct))


def _lines(indices: list[int]) -> str:
    """CSV line numbers (the header is line 1) of data rows, the first few."""
    more = f" (+{len(indices) - SHOWN} more)" if len(indices) > SHOWN else ""
    return ", ".join(str(i + 2) for i in indices[:SHOWN]) + more


def label_notes(path: Path, column: str, values: list[str]) -> list[str]:
    """What looks wrong in a label column: integers mixed with text (a typo that would become
    a class of its own) and classes with fewer than HANDFUL examples, each naming its rows."""
    notes = []
    integer = [_is_integer(v) for v in values]
    if any(integer) and not all(integer):
        odd = [i for i, flag in enumerate(integer) if flag != (sum(integer) * 2 > len(values))]
        kind = "text" if sum(integer) * 2 > len(values) else "integers"
        notes.append(f"{path}: column {column!r} mixes integers and text; the {kind} on line(s) {_lines(odd)} "
                     f"({', '.join(sorted({repr(values[i]) for i in odd})[:SHOWN])}) become classes of their own: "
                     "fix them if they are typos")
    counts = Counter(values)
    rare = sorted((c for c, k in counts.items() if k < HANDFUL), key=lambda c: counts[c])
    if rare:
        listed = "; ".join(f"{c!r} {counts[c]} (line(s) {_lines([i for i, v in enumerate(values) if v == c])})"
                           for c in rare[:SHOWN])
        notes.append(f"{path}: column {column!r} has {len(rare)} class(es) with fewer than {HANDFUL} examples, too "
                     f"few to learn or to score: {listed}{' ...' if len(rare) > SHOWN else ''}")
    return notes


def _splits(path: Path, rows: list[dict[str, str]], options: DataOptions
            ) -> tuple[dict[str, np.ndarray], list[str], tuple[str, ...]]:
    """Row indices per split (the split column's, or seeded fractions), capped by the sizes;
    notes; the splits carved out of train (a split column without val rows)."""
    notes, carved = [], ()
    if SPLIT_COLUMN in rows[0]:
        named = [_SPLIT_ALIASES.get((r[SPLIT_COLUMN] or "").strip().lower()) for r in rows]
        bad = next((i for i, s in enumerate(named) if s is None), None)
        if bad is not None:
            raise TrainingError(f"{path}:{bad + 2}: split {rows[bad][SPLIT_COLUMN]!r} is not one of {', '.join(SPLITS)}")
        splits = {s: np.flatnonzero(np.array(named) == s) for s in SPLITS}
        if not len(splits["val"]) and len(splits["train"]):
            train = splits["train"]
            n_val = int(round(len(train) * options.val_fraction))
            picked = np.random.default_rng((options.seed, 0x7A1)).permutation(len(train))[:n_val]
            splits["val"], splits["train"] = np.sort(train[picked]), np.delete(train, picked)
            carved = ("val",)
            notes.append(f"{path}: no val rows: {n_val} of the {len(train)} train rows (data.val_fraction "
                         f"{options.val_fraction}, seeded by the run's seed {options.seed}) are the val split")
    else:
        splits = seeded_split_indices(len(rows), options)
        notes.append(f"{path}: no {SPLIT_COLUMN!r} column: a seeded split by data.val_fraction "
                     f"{options.val_fraction} and data.test_fraction {options.test_fraction}")
    splits, capped = cap_splits(splits, options, str(path))
    return splits, notes + capped, carved


class CsvSplit(LabelledImages):
    def __init__(self, paths: list[Path], labels: np.ndarray, tasks: tuple[TaskSpec, ...], options: DataOptions,
                 rows: np.ndarray, dense: DenseColumns):
        self.paths, self.label_rows, self.tasks, self.options = paths, labels, tasks, options
        self.size = options.size
        self.rows, self.dense = rows, dense  # row index in the CSV of each sample

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, index: int) -> np.ndarray:
        import cv2

        path = self.paths[index]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise TrainingError(f"{path}: not a readable image (corrupt or unsupported format)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def image(self, index: int) -> np.ndarray:
        return fit_square(self._read(index), self.options)

    def sample(self, index: int) -> tuple[np.ndarray, dict[str, Label]]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        rgb = self._read(index)  # once: dense labels need its original size
        return fit_square(rgb, self.options), self._labels(index, rgb.shape[:2])

    def labels(self, index: int) -> dict[str, Label]:
        return self._labels(index, self._read(index).shape[:2] if self.dense.tasks else (0, 0))

    def _labels(self, index: int, shape: tuple[int, int]) -> dict[str, Label]:
        out: dict[str, Label] = {t.name: int(v) for t, v in zip(self.tasks, self.label_rows[index])}
        if self.dense.tasks:
            out.update(self.dense.labels(int(self.rows[index]), shape, self.size))
        return out


@DATASETS.register("csv", "csv:PATH - your labelled image folder: a CSV/TSV of image paths, a column per task "
                          "(dense labels too)")
def open_csv(spec: str, options: DataOptions) -> DataSource:
    path = Path(spec.partition(":")[2]).expanduser()
    if not path.is_file():
        raise TrainingError(f"{spec}: no such file {path}")
    rows = read_rows(path)
    columns = list(rows[0].keys())
    if IMAGE_COLUMN not in columns:
        raise TrainingError(f"{path}: no {IMAGE_COLUMN!r} column (columns: {', '.join(columns)})")
    task_columns = [c for c in columns if c not in (IMAGE_COLUMN, SPLIT_COLUMN, *DENSE_COLUMNS)]
    dense = DenseColumns(path, rows, columns, options.tasks)
    if dense.tasks and options.resize_mode != "resize":
        raise TrainingError(f"{spec}: resize_mode {options.resize_mode} with dense tasks is not supported yet "
                            "(their labels are stretched to the input); use resize_mode resize")
    if options.tasks is not None:
        dense_names = {t.name for t in dense.tasks}
        missing = [t for t in options.tasks if t not in task_columns and t not in dense_names]
        if missing:
            raise TrainingError(f"{path}: no column for task(s) {', '.join(missing)} (columns: {', '.join(columns)}; "
                                f"dense tasks come from the {', '.join(DENSE_COLUMNS)} columns)")
        task_columns = [t for t in options.tasks if t not in dense_names]
    if not task_columns and not dense.tasks:
        raise TrainingError(f"{path}: no task columns besides {IMAGE_COLUMN!r}/{SPLIT_COLUMN!r}")
    for n, row in enumerate(rows, start=2):
        empty = [c for c in [IMAGE_COLUMN, *task_columns] if not (row.get(c) or "").strip()]
        if empty:
            raise TrainingError(f"{path}:{n}: empty {', '.join(empty)}")
    classification = tuple(TaskSpec(c, _class_names([r[c].strip() for r in rows])) for c in task_columns)
    labels = np.array([[t.classes.index(r[t.name].strip()) for t in classification] for r in rows],
                      dtype=np.int64).reshape(len(rows), len(classification))
    by_name = {t.name: t for t in (*classification, *dense.tasks)}
    tasks = tuple(by_name[t] for t in options.tasks) if options.tasks is not None else tuple(by_name.values())
    images = [(path.parent / r[IMAGE_COLUMN].strip()) for r in rows]
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise TrainingError(f"{path}: {len(missing)} image file(s) missing, e.g. {missing[0]}")
    splits, notes, carved = _splits(path, rows, options)
    for t in classification:
        notes += label_notes(path, t.name, [r[t.name].strip() for r in rows])
    return DataSource(spec, tasks, {
        name: CsvSplit([images[i] for i in idx], labels[idx], classification, options, idx, dense)
        for name, idx in splits.items()
    }, options, notes=tuple(notes), carved=carved)
