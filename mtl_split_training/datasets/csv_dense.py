"""Dense labels of your own images, named in the CSV layout (docs/training.md, "Dense labels"):

    mask    a PNG of per-pixel class ids (8- or 16-bit, one channel; 255 = unlabelled)
            -> task `segmentation`
    depth   a .npy of float z-depth in metres, or a 16-bit PNG in millimetres (the ROS /
            RealSense convention); 0, NaN or inf = no measurement -> task `depth`
    coco    a COCO JSON holding this image (matched by file_name, or by base name when that
            is unique): its boxes -> task `detection`; its instance masks (polygons or RLE,
            decoded by faster-coco-eval) -> task `segmentation` when there is no mask column

Labels are resized with the image to size x size: masks and depth by nearest neighbour (a
blend of two depths is a depth that is nowhere), boxes scaled.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtl_split_core.bundle import TaskSpec
from mtl_split_core.dense import Boxes

from ..errors import TrainingError
from .base import IGNORE

MASK_COLUMN, DEPTH_COLUMN, COCO_COLUMN = "mask", "depth", "coco"
DENSE_COLUMNS = (MASK_COLUMN, DEPTH_COLUMN, COCO_COLUMN)
SEGMENTATION, DEPTH, DETECTION = "segmentation", "depth", "detection"
BACKGROUND = "background"


def _read(path: Path, flags: int) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), flags)
    if image is None:
        raise TrainingError(f"{path}: not a readable image (corrupt or unsupported format)")
    return image


def read_mask(path: Path) -> np.ndarray:
    """A class-id PNG as an integer HxW array."""
    import cv2

    mask = _read(path, cv2.IMREAD_UNCHANGED)
    if mask.ndim != 2:
        raise TrainingError(f"{path}: a mask must have one channel of class ids, it has {mask.shape[2]}")
    return mask


def read_depth(path: Path) -> np.ndarray:
    """Depth in metres (float32 HxW, 0 where there is no measurement)."""
    import cv2

    if path.suffix.lower() == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise TrainingError(f"{path}: not a numpy array file ({e})") from e
        depth = np.squeeze(depth).astype(np.float32)
    else:
        raw = _read(path, cv2.IMREAD_UNCHANGED)
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise TrainingError(f"{path}: a depth PNG must be 16-bit single-channel millimetres, got "
                                f"{raw.dtype} with shape {raw.shape}; or give a .npy in metres")
        depth = raw.astype(np.float32) / 1000.0
    if depth.ndim != 2:
        raise TrainingError(f"{path}: depth must be HxW, got shape {depth.shape}")
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def resize_nearest(label: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if label.shape[:2] == (size, size):
        return label
    return cv2.resize(label, (size, size), interpolation=cv2.INTER_NEAREST)


class CocoFiles:
    """COCO JSONs, each loaded once, and the annotations of an image in them."""

    def __init__(self) -> None:
        self._files: dict[Path, Any] = {}

    def get(self, path: Path) -> Any:
        if path not in self._files:
            from faster_coco_eval import COCO

            if not path.is_file():
                raise TrainingError(f"{path}: no such COCO file")
            try:
                coco = COCO(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError) as e:
                raise TrainingError(f"{path}: not a COCO annotation file ({type(e).__name__}: {e})") from e
            by_name: dict[str, list[int]] = {}
            for img in coco.dataset.get("images", []):
                for key in {img["file_name"], Path(img["file_name"]).name}:
                    by_name.setdefault(key, []).append(img["id"])
            self._files[path] = (coco, by_name)
        return self._files[path]

    def image_id(self, path: Path, image: str) -> int:
        _, by_name = self.get(path)
        for key in (image, Path(image).name):
            ids = by_name.get(key, [])
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1 and key == image:
                raise TrainingError(f"{path}: {len(ids)} images have file_name {image!r}")
        raise TrainingError(f"{path}: no image with file_name {image!r} (or a unique base name "
                            f"{Path(image).name!r}); the CSV's image column must name COCO images")

    def categories(self, path: Path) -> list[tuple[int, str]]:
        coco, _ = self.get(path)
        return sorted((int(c["id"]), str(c["name"])) for c in coco.dataset.get("categories", []))


class DenseColumns:
    """The dense labels of a CSV's rows: which tasks they give and each row's labels."""

    def __init__(self, csv_path: Path, rows: Sequence[dict[str, str]], columns: Sequence[str],
                 wanted: Sequence[str] | None):
        self.base = csv_path.parent
        self.rows = rows
        self.coco = CocoFiles()
        present = [c for c in DENSE_COLUMNS if c in columns]
        self.mask_from = MASK_COLUMN if MASK_COLUMN in present else COCO_COLUMN if COCO_COLUMN in present else None
        offered = {SEGMENTATION: self.mask_from is not None, DEPTH: DEPTH_COLUMN in present,
                   DETECTION: COCO_COLUMN in present}
        names = [t for t, ok in offered.items() if ok]
        if wanted is not None:
            names = [t for t in names if t in wanted]
        need_categories = COCO_COLUMN in present and bool({DETECTION, SEGMENTATION} & set(names))
        for column in sorted({self._column(t) for t in names} | ({COCO_COLUMN} if need_categories else set())):
            empty = next((n for n, r in enumerate(rows, start=2) if not (r.get(column) or "").strip()), None)
            if empty is not None:
                raise TrainingError(f"{csv_path}:{empty}: empty {column} cell")
            missing = [p for p in (self._path(i, column) for i in range(len(rows))) if not p.is_file()]
            if missing:
                raise TrainingError(f"{csv_path}: {len(missing)} {column} file(s) missing, e.g. {missing[0]}")
        self._categories: list[tuple[int, str]] = []
        if need_categories:
            self._categories = self._coco_categories(csv_path)
        self.tasks = tuple(self._task(t) for t in names)

    def _column(self, task: str) -> str:
        return {SEGMENTATION: self.mask_from, DEPTH: DEPTH_COLUMN, DETECTION: COCO_COLUMN}[task]

    def _path(self, row: int, column: str) -> Path:
        return self.base / self.rows[row][column].strip()

    def _coco_categories(self, csv_path: Path) -> list[tuple[int, str]]:
        files = sorted({self._path(i, COCO_COLUMN) for i in range(len(self.rows))})
        cats = self.coco.categories(files[0])
        for f in files[1:]:
            if self.coco.categories(f) != cats:
                raise TrainingError(f"{csv_path}: {f} and {files[0]} have different categories; "
                                    "every COCO file of one dataset needs the same ones")
        if not cats:
            raise TrainingError(f"{files[0]}: no categories")
        return cats

    def _task(self, name: str) -> TaskSpec:
        if name == DEPTH:
            return TaskSpec(DEPTH, (), "depth")
        if name == DETECTION:
            return TaskSpec(DETECTION, tuple(n for _, n in self._categories), "detection")
        if self.mask_from == COCO_COLUMN:
            return TaskSpec(SEGMENTATION, (BACKGROUND, *(n for _, n in self._categories)), "segmentation")
        if self._categories:  # mask ids follow the COCO file's categories, 0 = background
            return TaskSpec(SEGMENTATION, (BACKGROUND, *(n for _, n in self._categories)), "segmentation")
        top = max(_max_label(read_mask(self._path(i, MASK_COLUMN))) for i in range(len(self.rows)))
        return TaskSpec(SEGMENTATION, tuple(str(k) for k in range(top + 1)), "segmentation")

    def labels(self, row: int, image_shape: tuple[int, int], size: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        h, w = image_shape
        for task in self.tasks:
            if task.name == DEPTH:
                out[DEPTH] = resize_nearest(self._checked(read_depth(self._path(row, DEPTH_COLUMN)), h, w, row), size)
            elif task.name == DETECTION:
                out[DETECTION] = self._boxes(row, h, w).scaled(size / w, size / h)
            elif self.mask_from == MASK_COLUMN:
                mask = self._checked(read_mask(self._path(row, MASK_COLUMN)), h, w, row)
                out[SEGMENTATION] = resize_nearest(np.where(mask < task.num_classes, mask, IGNORE).astype(np.uint8), size)
            else:
                out[SEGMENTATION] = resize_nearest(self._coco_mask(row, h, w), size)
        return out

    def _checked(self, label: np.ndarray, h: int, w: int, row: int) -> np.ndarray:
        if label.shape[:2] != (h, w):
            raise TrainingError(f"row {row + 2}: label of size {label.shape[1]}x{label.shape[0]} for an image of "
                                f"{w}x{h}; masks and depth must have the image's size")
        return label

    def _annotations(self, row: int, h: int, w: int) -> list[dict[str, Any]]:
        path = self._path(row, COCO_COLUMN)
        coco, _ = self.coco.get(path)
        image_id = self.coco.image_id(path, self.rows[row]["image"].strip())
        info = coco.imgs[image_id]
        if (info.get("height"), info.get("width")) != (h, w):
            raise TrainingError(f"{path}: image {info['file_name']} is {info.get('width')}x{info.get('height')} "
                                f"in the COCO file but {w}x{h} on disk")
        return coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))

    def _boxes(self, row: int, h: int, w: int) -> Boxes:
        index = {cid: k for k, (cid, _) in enumerate(self._categories)}
        anns = [a for a in self._annotations(row, h, w) if not a.get("iscrowd", 0)]
        xyxy = [[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns)]
        return Boxes(np.array(xyxy, np.float32).reshape(-1, 4), np.array([index[a["category_id"]] for a in anns]))

    def _coco_mask(self, row: int, h: int, w: int) -> np.ndarray:
        """Instance masks painted largest first (small objects stay on top); crowds unlabelled."""
        coco, _ = self.coco.get(self._path(row, COCO_COLUMN))
        index = {cid: k + 1 for k, (cid, _) in enumerate(self._categories)}
        mask = np.zeros((h, w), np.uint8)
        anns = [a for a in self._annotations(row, h, w) if a.get("segmentation")]
        for a in sorted(anns, key=lambda a: -float(a.get("area", 0.0))):
            mask[coco.annToMask(a).astype(bool)] = IGNORE if a.get("iscrowd", 0) else index[a["category_id"]]
        return mask


def _max_label(mask: np.ndarray) -> int:
    labelled = mask[mask != IGNORE]
    return int(labelled.max()) if labelled.size else 0
