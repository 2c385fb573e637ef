"""sensor_msgs Image / CompressedImage -> HxWx3 uint8 numpy array in the model's channel order.

Duck-typed: works on rclpy messages and on rosbags' deserialized messages alike (only the
fields are read). Encodings are rosbags-image's (and cv_bridge's for raw images when it is
importable, as on a ROS install) — no encoding table here. What this module adds is the
checks a driver bug needs (size, step, corrupt JPEG), each raised as an ImageError whose
message says what is wrong and how to fix it.
"""
from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np
from rosbags.image import ImageError as RosbagsImageError
from rosbags.image.image import convert_color, image_to_cvimage, to_cvtype

from .errors import ImageError

# Channel orders a backbone can be trained on (manifest InputSpec.encoding).
MODEL_ENCODINGS = ("rgb8", "bgr8")
SUPPORTED_HINT = "publish rgb8, bgr8, mono8, rgba8, bgra8 or their 16-bit variants, or a JPEG/PNG CompressedImage"


def is_compressed(msg: Any) -> bool:
    """sensor_msgs/CompressedImage has `format`, sensor_msgs/Image has `encoding`."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


@functools.cache
def _cv_bridge() -> Any:
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


def to_array(msg: Any, encoding: str = "rgb8") -> np.ndarray:
    """Image or CompressedImage -> contiguous (H, W, 3) uint8 in `encoding` (rgb8 or bgr8).
    16-bit images are scaled to 8 bits. Raises ImageError for anything unusable."""
    if encoding not in MODEL_ENCODINGS:
        raise ImageError(f"model input encoding {encoding!r} is not one of {MODEL_ENCODINGS}; re-export the bundle")
    img = _compressed_to_array(msg, encoding) if is_compressed(msg) else _raw_to_array(msg, encoding)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ImageError(f"conversion gave a {img.dtype} array of shape {img.shape}, not HxWx3 uint8; {SUPPORTED_HINT}")
    return np.ascontiguousarray(img)


def _raw_to_array(msg: Any, encoding: str) -> np.ndarray:
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    try:
        depth, _, _, channels = to_cvtype(msg.encoding)
    except RosbagsImageError:
        raise ImageError(f"unsupported encoding {msg.encoding!r}; {SUPPORTED_HINT}") from None
    if height <= 0 or width <= 0:
        raise ImageError(f"empty image ({width}x{height}); the camera driver published no pixels")
    row = width * channels * depth // 8
    if step < row:
        raise ImageError(
            f"step {step} < width {width} x {channels} channel(s) x {depth // 8} byte(s) = {row}; "
            f"the driver sets step wrong for encoding {msg.encoding!r} (step must be the bytes per row)")
    if len(msg.data) != step * height:
        raise ImageError(
            f"data has {len(msg.data)} bytes, step {step} x height {height} = {step * height}; "
            "truncated or mis-sized image (check the driver's width/height/step)")
    bridge = _cv_bridge()
    try:
        if bridge is not None:
            return bridge.imgmsg_to_cv2(msg, encoding)
        if step != row:  # rosbags-image assumes unpadded rows
            rows = np.frombuffer(msg.data, np.uint8).reshape(height, step)[:, :row]
            msg = _Unpadded(msg, rows.tobytes())
        return image_to_cvimage(msg, encoding)
    except (RosbagsImageError, cv2.error, TypeError, ValueError) as e:
        raise ImageError(f"cannot convert {msg.encoding!r} to {encoding} ({e}); {SUPPORTED_HINT}") from e


class _Unpadded:
    """An Image's fields with the row padding removed from data."""

    def __init__(self, msg: Any, data: bytes) -> None:
        self.encoding, self.height, self.width = msg.encoding, msg.height, msg.width
        self.is_bigendian, self.data = msg.is_bigendian, data
        self.step = len(data) // msg.height


def _compressed_to_array(msg: Any, encoding: str) -> np.ndarray:
    fmt = str(msg.format)
    if "compressedDepth" in fmt:
        raise ImageError(f"format {fmt!r} is a depth image; subscribe the edge to a colour camera")
    buf = np.frombuffer(msg.data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise ImageError(
            f"{len(buf)}-byte {fmt or 'compressed'} image does not decode (corrupt or truncated "
            "JPEG/PNG); check the camera's compressed transport")
    channels = 1 if img.ndim == 2 else img.shape[2]
    bits = 16 if img.dtype == np.uint16 else 8
    # cv2.imdecode always yields OpenCV's channel order: GRAY, BGR or BGRA.
    source = {1: "mono", 3: "bgr", 4: "bgra"}.get(channels)
    if source is None or img.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"decoded {fmt} image has {channels} channels of {img.dtype}; {SUPPORTED_HINT}")
    try:
        return convert_color(img, f"{source}{bits}", encoding)
    except (RosbagsImageError, cv2.error) as e:
        raise ImageError(f"cannot convert the decoded {fmt} image to {encoding} ({e})") from e
