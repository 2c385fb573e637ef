"""Camera frames -> the backbone's input batch, exactly as the manifest's InputSpec says.

One function for live nodes, offline evaluation and benchmarks, so they feed the backbone
identical tensors. Resizing is a plain stretch to (width, height), no crop: cv2 INTER_AREA
when shrinking (no aliasing from large camera frames), INTER_LINEAR when enlarging.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .bundle import InputSpec
from .errors import ImageError


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """HxWxC uint8 -> height x width x C; a no-op (no copy) at the right size."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    interp = cv2.INTER_AREA if w >= width and h >= height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def normalization(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per channel with (pixel * scale + offset) == (pixel/255 - mean) / std."""
    std = np.asarray(spec.std, np.float32)
    mean = np.asarray(spec.mean, np.float32)
    return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)


def preprocess(images: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """HxWx3 uint8 frames (any sizes, already in spec.encoding's channel order) ->
    float32 (N, 3, spec.height, spec.width), C-contiguous."""
    if not len(images):
        raise ImageError("no images to preprocess")
    batch = np.empty((len(images), spec.height, spec.width, 3), np.uint8)
    for i, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ImageError(f"frame {i}: expected HxWx3 uint8, got {img.dtype} {img.shape}")
        batch[i] = resize(img, spec.width, spec.height)
    scale, offset = normalization(spec)
    out = batch.astype(np.float32)
    out *= scale
    out += offset
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
