"""Camera frames of any size -> the backbone's input batch, exactly as the manifest's InputSpec says.

One code path for live nodes, offline evaluation, training on files and the benchmarks, so
they all feed the backbone identical tensors. Work happens at the model's size wherever it
can: the frame is cropped as a view (no copy, padded rows included), shrunk with an area
filter (no aliasing from a 12-MP frame), and only then converted to the model's channel
order and 8 bits, so a camera frame is never copied or colour-converted at full resolution.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .bundle import InputSpec
from .errors import ImageError

# Channel orders a backbone can be trained on (InputSpec.encoding).
MODEL_ENCODINGS = ("rgb8", "bgr8")
# Letterbox padding grey (as YOLO pads): the same constant in training and on the edge.
LETTERBOX_PAD = 114
# libjpeg decodes at 1/2, 1/4 or 1/8 scale almost for free (it scales the DCT).
JPEG_REDUCTIONS = (8, 4, 2)

Rect = tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True)
class Decoded:
    """A camera frame as decoded, before any conversion: HxW or HxWxC uint8/uint16, possibly
    a strided view of the message's buffer, in `encoding`'s channels (mono8, rgb8, bgr8,
    rgba8, bgra8 or their 16-bit variants)."""

    image: np.ndarray
    encoding: str
    size: tuple[int, int] | None = None  # the camera frame's (width, height) when image is a reduced decode


def camera_size(frame: Decoded | np.ndarray) -> tuple[int, int]:
    """(width, height) of the camera frame as published (before any reduced decode)."""
    if isinstance(frame, Decoded):
        return frame.size or (frame.image.shape[1], frame.image.shape[0])
    return frame.shape[1], frame.shape[0]


@dataclass(frozen=True)
class Geometry:
    """Where a frame lands in the model input: the source rectangle that is kept, and the
    rectangle of the (spec.width, spec.height) input it is drawn into (the rest is padding)."""

    source: Rect
    target: Rect

    @property
    def shrink(self) -> float:
        """How many source pixels per input pixel (the smaller of both axes)."""
        return min(self.source[2] / self.target[2], self.source[3] / self.target[3])


def geometry(width: int, height: int, spec: InputSpec) -> Geometry:
    """The spec's resize_mode applied to a width x height frame."""
    if width < 1 or height < 1:
        raise ImageError(f"empty frame ({width}x{height})")
    full = (0, 0, width, height)
    if spec.resize_mode == "resize":
        return Geometry(full, (0, 0, spec.width, spec.height))
    if spec.resize_mode == "center_crop":
        if width * spec.height > height * spec.width:  # wider than the input: cut the sides
            w = max(1, round(height * spec.width / spec.height))
            return Geometry(((width - w) // 2, 0, w, height), (0, 0, spec.width, spec.height))
        h = max(1, round(width * spec.height / spec.width))
        return Geometry((0, (height - h) // 2, width, h), (0, 0, spec.width, spec.height))
    scale = min(spec.width / width, spec.height / height)  # letterbox
    w, h = max(1, min(spec.width, round(width * scale))), max(1, min(spec.height, round(height * scale)))
    return Geometry(full, ((spec.width - w) // 2, (spec.height - h) // 2, w, h))


def jpeg_reduction(width: int, height: int, spec: InputSpec) -> int:
    """The largest libjpeg scale-down (1, 2, 4, 8) that still leaves at least one source
    pixel per input pixel, so the area filter after it never has to enlarge."""
    shrink = geometry(width, height, spec).shrink
    return next((r for r in JPEG_REDUCTIONS if r <= shrink), 1)


def area_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to width x height: an area filter when shrinking (each output pixel averages
    the source pixels it covers: no aliasing), bilinear when enlarging; no copy at the right
    size. OpenCV's area filter is ~4x faster at integer ratios, so a large ratio is done as
    an integer step (cropping at most ratio-1 source pixels, centred) then a small exact one."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if w < width or h < height:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    kx, ky = w // width, h // height
    if kx >= 2 or ky >= 2:
        cw, ch = (w // kx) * kx, (h // ky) * ky
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        image = cv2.resize(image[y0:y0 + ch, x0:x0 + cw], (cw // kx, ch // ky), interpolation=cv2.INTER_AREA)
        if image.shape[1] == width and image.shape[0] == height:
            return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def to_model_colour(image: np.ndarray, encoding: str, model_encoding: str) -> np.ndarray:
    """Small HxW[xC] image in `encoding` -> HxWx3 uint8 in the model's channel order."""
    from rosbags.image import ImageError as RosbagsImageError
    from rosbags.image.image import convert_color

    try:
        out = convert_color(image, encoding, model_encoding)
    except (RosbagsImageError, cv2.error) as e:
        raise ImageError(f"cannot convert {encoding!r} to {model_encoding} ({e})") from e
    if out.ndim != 3 or out.shape[2] != 3 or out.dtype != np.uint8:
        raise ImageError(f"converting {encoding!r} to {model_encoding} gave a {out.dtype} array of shape "
                         f"{out.shape}, not HxWx3 uint8")
    return out


def fit(frame: Decoded | np.ndarray, spec: InputSpec, out: np.ndarray | None = None) -> np.ndarray:
    """One frame -> (spec.height, spec.width, 3) uint8 in spec.encoding, written into `out`
    when given. A plain array is taken as HxWx3 uint8 already in spec.encoding."""
    if not isinstance(frame, Decoded):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ImageError(f"expected an HxWx3 uint8 frame, got {frame.dtype} {frame.shape}")
        frame = Decoded(frame, spec.encoding)
    img = frame.image
    g = geometry(img.shape[1], img.shape[0], spec)
    (sx, sy, sw, sh), (tx, ty, tw, th) = g.source, g.target
    content = to_model_colour(area_resize(img[sy:sy + sh, sx:sx + sw], tw, th), frame.encoding, spec.encoding)
    if out is None:
        out = np.empty((spec.height, spec.width, 3), np.uint8)
    if (tw, th) != (spec.width, spec.height):
        out[:] = LETTERBOX_PAD
    out[ty:ty + th, tx:tx + tw] = content
    return out


def normalization(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per channel with (pixel * scale + offset) == (pixel/255 - mean) / std."""
    std = np.asarray(spec.std, np.float32)
    mean = np.asarray(spec.mean, np.float32)
    return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)


def preprocess(frames: Sequence[Decoded | np.ndarray], spec: InputSpec) -> np.ndarray:
    """Frames of any sizes -> float32 (N, 3, spec.height, spec.width), C-contiguous."""
    if not len(frames):
        raise ImageError("no images to preprocess")
    if spec.encoding not in MODEL_ENCODINGS:
        raise ImageError(f"model input encoding {spec.encoding!r} is not one of {MODEL_ENCODINGS}; re-export the bundle")
    batch = np.empty((len(frames), spec.height, spec.width, 3), np.uint8)
    for i, frame in enumerate(frames):
        fit(frame, spec, batch[i])
    scale, offset = normalization(spec)
    out = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)  # one copy, into NCHW order
    out *= scale[:, None, None]
    out += offset[:, None, None]
    return out
