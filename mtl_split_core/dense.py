"""Dense results as numpy: boxes, the server's post-processing of heads.onnx's dense outputs
(argmax mask, depth in metres, box decoding + NMS), and their mapping onto the camera frame.

ROS-free and torch-free: the server, the evaluation and the datasets share these types.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .bundle import InputSpec
    from .preprocess import Geometry


@dataclass(frozen=True)
class Boxes:
    """2D boxes of one image: [x0, y0, x1, y1] in pixels (x1, y1 exclusive: a box covering
    columns 3..7 is [3, y0, 8, y1]), a class index and a score each (1 for ground truth)."""

    xyxy: np.ndarray  # float32 (n, 4)
    classes: np.ndarray  # int64 (n,)
    scores: np.ndarray = field(default=None)  # float32 (n,)

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        classes = np.asarray(self.classes, np.int64).reshape(-1)
        scores = np.ones(len(xyxy), np.float32) if self.scores is None else np.asarray(self.scores, np.float32)
        if not len(xyxy) == len(classes) == len(scores.reshape(-1)):
            raise ValueError(f"boxes: {len(xyxy)} boxes, {len(classes)} classes, {len(scores)} scores")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "scores", scores.reshape(-1))

    def __len__(self) -> int:
        return len(self.xyxy)

    def scaled(self, sx: float, sy: float) -> "Boxes":
        """The boxes in an image resized by (sx, sy)."""
        return Boxes(self.xyxy * np.array([sx, sy, sx, sy], np.float32), self.classes, self.scores)


# --- the server's post-processing of heads.onnx's dense outputs (layouts: bundle.TASK_KINDS) ---

SCORE_THRESHOLD = 0.1  # detections below this heatmap score are dropped before NMS
IOU_THRESHOLD = 0.5  # class-wise NMS: a box overlapping a better one of its class this much goes
MAX_DETECTIONS = 100


def segmentation_mask(logits: np.ndarray) -> np.ndarray:
    """(classes, H, W) logits -> uint8 (H, W) class ids (uint16 past 255 classes)."""
    dtype = np.uint8 if logits.shape[0] <= 255 else np.uint16
    return np.argmax(logits, axis=0).astype(dtype)


def depth_image(output: np.ndarray) -> np.ndarray:
    """(1, H, W) depth output -> float32 (H, W) metres."""
    return np.ascontiguousarray(output[0], np.float32)


def peaks(heatmap: np.ndarray) -> np.ndarray:
    """Cells that are the maximum of their 3x3 neighbourhood in their class's heatmap (the
    CenterNet peak test): bool, same shape as heatmap (classes, h, w)."""
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    dilated = np.stack([cv2.dilate(h, kernel, borderType=cv2.BORDER_REPLICATE) for h in heatmap])
    return heatmap >= dilated


def nms(boxes: Boxes, iou_threshold: float = IOU_THRESHOLD) -> Boxes:
    """Class-wise non-maximum suppression (OpenCV's NMSBoxesBatched), best first."""
    import cv2

    if not len(boxes):
        return boxes
    xywh = np.concatenate([boxes.xyxy[:, :2], boxes.xyxy[:, 2:] - boxes.xyxy[:, :2]], axis=1)
    keep = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, boxes.scores, boxes.classes.astype(np.int32), 0.0,
                                              iou_threshold), np.int64).reshape(-1)
    keep = keep[np.argsort(-boxes.scores[keep], kind="stable")]
    return Boxes(boxes.xyxy[keep], boxes.classes[keep], boxes.scores[keep])


def decode_detections(output: np.ndarray, image_size: tuple[int, int], score_threshold: float = SCORE_THRESHOLD,
                      iou_threshold: float = IOU_THRESHOLD, max_detections: int = MAX_DETECTIONS) -> Boxes:
    """One frame's detection output (classes + 4, h, w) -> Boxes in input pixels.

    Heatmap peaks above score_threshold (the max_detections best) become boxes: the cell's
    centre minus/plus the predicted left/top/right/bottom distances, clipped to the image
    (width, height), then class-wise NMS."""
    k = output.shape[0] - 4
    if k < 1:
        raise ValueError(f"a detection output needs classes + 4 channels, got {output.shape[0]}")
    heatmap, ltrb = output[:k], output[k:]
    width, height = image_size
    stride_x, stride_y = width / output.shape[2], height / output.shape[1]
    candidates = peaks(heatmap) & (heatmap >= score_threshold)
    cls, ys, xs = np.nonzero(candidates)
    scores = heatmap[cls, ys, xs]
    best = np.argsort(-scores, kind="stable")[:max_detections]
    cls, ys, xs, scores = cls[best], ys[best], xs[best], scores[best]
    cx, cy = (xs + 0.5) * stride_x, (ys + 0.5) * stride_y
    d = ltrb[:, ys, xs]
    xyxy = np.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], axis=1)
    xyxy = np.clip(xyxy, 0, [width, height, width, height])
    return nms(Boxes(xyxy, cls, scores), iou_threshold)


DensePrediction = np.ndarray | Boxes


def postprocess(kind: str, output: np.ndarray, image_size: tuple[int, int]) -> DensePrediction:
    """One frame's dense heads.onnx output -> its result: a uint8 class-id mask, a float32
    depth image in metres, or Boxes in pixels of an image of image_size (width, height)."""
    if kind == "segmentation":
        return segmentation_mask(output)
    if kind == "depth":
        return depth_image(output)
    if kind == "detection":
        return decode_detections(output, image_size)
    raise ValueError(f"{kind!r} is not a dense task kind")


UNLABELLED = 255  # mask value of camera pixels the model never saw (cut off by center_crop)


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """The pixel grid of a (width, height) frame scaled by `scale` (at least 1x1)."""
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def resample(value: DensePrediction, size: tuple[int, int], to: tuple[int, int]) -> DensePrediction:
    """A result on a (width, height) grid -> the same result on the `to` grid: boxes scaled,
    masks and depth nearest-neighbour with pixel centres aligned (INTER_NEAREST_EXACT; plain
    INTER_NEAREST shifts by up to half a pixel). Nearest for depth too: bilinear would blend a
    foreground and a background depth at every object edge into "flying pixels" on no surface
    (phantom points in a point cloud); every output depth is one the model predicted."""
    if tuple(size) == tuple(to):
        return value
    if min(*size, *to) < 1:
        raise ValueError(f"cannot resample a result on a {size[0]}x{size[1]} grid to {to[0]}x{to[1]}")
    if isinstance(value, Boxes):
        return value.scaled(to[0] / size[0], to[1] / size[1])
    import cv2

    return cv2.resize(np.ascontiguousarray(value), to, interpolation=cv2.INTER_NEAREST_EXACT)


def to_source(value: DensePrediction, geometry: "Geometry", size: tuple[int, int],
              scale: float = 1.0) -> DensePrediction:
    """A result in model-input pixels -> on the camera frame of `size` (width, height), or on
    that frame's grid scaled by `scale` (scaled_size): the inverse of the frame's way into the
    input (preprocess.geometry), for each resize_mode:

    - resize: the whole input is the whole frame, each axis scaled on its own;
    - center_crop: the whole input is the kept centre of the frame; camera pixels cut off
      were never seen and get UNLABELLED / NaN (no reading, as in REP 118);
    - letterbox: the drawn rectangle of the input is the whole frame; the padding is
      dropped, and so are boxes that lie wholly in it.

    Boxes map exactly (floats); masks and depth are resampled nearest (resample)."""
    out_w, out_h = scaled_size(size, scale)
    kx_out, ky_out = out_w / size[0], out_h / size[1]
    x0, y0, w0, h0 = geometry.source
    tx, ty, tw, th = geometry.target
    if isinstance(value, Boxes):
        k = np.array([w0 / tw * kx_out, h0 / th * ky_out] * 2, np.float32)
        xyxy = (value.xyxy - np.array([tx, ty, tx, ty], np.float32)) * k \
            + np.array([x0 * kx_out, y0 * ky_out] * 2, np.float32)
        xyxy = np.clip(xyxy, 0, [out_w, out_h, out_w, out_h])
        seen = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return Boxes(xyxy[seen], value.classes[seen], value.scores[seen])
    sx, sy = min(round(x0 * kx_out), out_w - 1), min(round(y0 * ky_out), out_h - 1)
    sw = max(1, min(round((x0 + w0) * kx_out), out_w) - sx)
    sh = max(1, min(round((y0 + h0) * ky_out), out_h) - sy)
    crop = resample(np.ascontiguousarray(value[ty:ty + th, tx:tx + tw]), (tw, th), (sw, sh))
    if (sx, sy, sw, sh) == (0, 0, out_w, out_h):
        return crop
    fill = np.nan if value.dtype.kind == "f" else UNLABELLED
    out = np.full((out_h, out_w), fill, value.dtype)
    out[sy:sy + sh, sx:sx + sw] = crop
    return out


def to_frame(value: DensePrediction, grid: tuple[int, int], size: tuple[int, int], spec: "InputSpec"
             ) -> DensePrediction:
    """A dense result received on a (width, height) `grid` -> on the (width, height) camera
    frame it was made from. On the model input's grid (a server with dense_grid "model") it is
    mapped back through the bundle's resize_mode (to_source); on the camera's grid, scaled by
    the server's dense_scale or not, it is resampled. Where both readings apply they agree: a
    frame of the input's aspect ratio is neither cropped nor padded."""
    if tuple(grid) == (spec.width, spec.height):
        from .preprocess import geometry

        return to_source(value, geometry(*size, spec), size)
    return resample(value, grid, size)
