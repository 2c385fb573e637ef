"""sensor_msgs Image / CompressedImage -> a Decoded frame, checked, without needless copies.

Duck-typed: works on rclpy messages and on rosbags' deserialized messages alike (only the
fields are read). Encodings are rosbags-image's (no encoding table here). What this module
adds is the checks a driver bug or a hostile publisher needs, each raised as an ImageError
whose message says what is wrong and how to fix it:

- the size is checked against max_pixels before anything is allocated: width x height of a
  raw Image, the JPEG/PNG header of a CompressedImage (a decompression bomb costs
  microseconds, not seconds and gigabytes);
- a raw Image is a view of the message's buffer (padded rows included, no copy); only
  encodings that need it (Bayer, YUV) are converted at full resolution, everything else is
  converted after preprocess has shrunk it;
- a JPEG is decoded at 1/2, 1/4 or 1/8 scale when the model input is that much smaller.
"""
from __future__ import annotations

import sys
from typing import Any

import cv2
import numpy as np

from .bundle import InputSpec
from .errors import ImageError, ImageTooLarge
from .image_header import DEFAULT_MAX_PIXELS, JPEG, read_header
from .preprocess import Decoded, jpeg_reduction, to_model_colour

SUPPORTED_HINT = "publish rgb8, bgr8, mono8, rgba8, bgra8 or their 16-bit variants, or a JPEG/PNG CompressedImage"
# Channel layouts preprocess converts after shrinking; anything else is converted on decode.
_NATIVE = ("mono8", "rgb8", "bgr8", "rgba8", "bgra8", "mono16", "rgb16", "bgr16", "rgba16", "bgra16")
_REDUCED = {(2, 3): cv2.IMREAD_REDUCED_COLOR_2, (4, 3): cv2.IMREAD_REDUCED_COLOR_4, (8, 3): cv2.IMREAD_REDUCED_COLOR_8,
            (2, 1): cv2.IMREAD_REDUCED_GRAYSCALE_2, (4, 1): cv2.IMREAD_REDUCED_GRAYSCALE_4,
            (8, 1): cv2.IMREAD_REDUCED_GRAYSCALE_8}
# What cv2.imdecode yields per channel count (OpenCV's order), by bit depth.
_DECODED = {1: "mono", 3: "bgr", 4: "bgra"}


def is_compressed(msg: Any) -> bool:
    """sensor_msgs/CompressedImage has `format`, sensor_msgs/Image has `encoding`."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def decode(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS, reduce_for: InputSpec | None = None) -> Decoded:
    """Image or CompressedImage -> Decoded. reduce_for: decode JPEGs at the smallest libjpeg
    scale that still gives this model input at least one source pixel per input pixel."""
    if is_compressed(msg):
        return _compressed(msg, max_pixels, reduce_for)
    return _raw(msg, max_pixels)


def frame_size(msg: Any) -> tuple[int, int]:
    """(width, height) of an Image or CompressedImage without decoding it."""
    if is_compressed(msg):
        header = read_header(np.frombuffer(msg.data, np.uint8))
        return header.width, header.height
    return int(msg.width), int(msg.height)


def to_array(msg: Any, encoding: str = "rgb8", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Image or CompressedImage -> contiguous full-resolution (H, W, 3) uint8 in `encoding`
    (rgb8 or bgr8); 16-bit images are scaled to 8 bits. For tools that need whole frames."""
    frame = decode(msg, max_pixels)
    return np.ascontiguousarray(to_model_colour(frame.image, frame.encoding, encoding))


def _too_large(what: str, width: int, height: int, max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(f"{what} is {width}x{height} = {width * height} pixels, more than max_pixels "
                         f"{max_pixels}; refused before decoding (raise the edge's max_pixels if the camera "
                         "really is that large)")


def _raw(msg: Any, max_pixels: int) -> Decoded:
    from rosbags.image import ImageError as RosbagsImageError
    from rosbags.image.image import convert_color, to_cvtype

    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    try:
        depth, _, typestr, channels = to_cvtype(msg.encoding)
    except RosbagsImageError:
        raise ImageError(f"unsupported encoding {msg.encoding!r}; {SUPPORTED_HINT}") from None
    if height <= 0 or width <= 0:
        raise ImageError(f"empty image ({width}x{height}); the camera driver published no pixels")
    if width * height > max_pixels:
        raise _too_large("image", width, height, max_pixels)
    itemsize = depth // 8
    row = width * channels * itemsize
    if step < row:
        raise ImageError(
            f"step {step} < width {width} x {channels} channel(s) x {itemsize} byte(s) = {row}; "
            f"the driver sets step wrong for encoding {msg.encoding!r} (step must be the bytes per row)")
    if len(msg.data) != step * height:
        raise ImageError(
            f"data has {len(msg.data)} bytes, step {step} x height {height} = {step * height}; "
            "truncated or mis-sized image (check the driver's width/height/step)")
    # A view of the message's buffer: rows `step` bytes apart, padding skipped, nothing copied.
    image = np.ndarray((height, width, channels), np.dtype(typestr), buffer=np.frombuffer(msg.data, np.uint8),
                       strides=(step, channels * itemsize, itemsize))
    if step % itemsize:  # 16-bit rows at odd offsets: OpenCV needs aligned rows
        image = np.ascontiguousarray(image)
    if itemsize > 1 and bool(msg.is_bigendian) != (sys.byteorder == "big"):
        image = image.byteswap()
    if channels == 1:
        image = image[:, :, 0]
    if msg.encoding in _NATIVE:
        return Decoded(image, msg.encoding)
    # A generic nUCm layout is read in OpenCV's channel order (mono, BGR, BGRA); Bayer and YUV
    # become BGR here, at full size (demosaicing needs every pixel).
    bits = "16" if itemsize == 2 else "8"
    if msg.encoding[0].isdigit():
        if channels not in _DECODED or itemsize not in (1, 2):
            raise ImageError(f"cannot convert {msg.encoding!r}: a generic layout with no colour meaning (a depth image?); {SUPPORTED_HINT}")
        return Decoded(image, f"{_DECODED[channels]}{bits}")
    target = f"bgr{bits}"
    try:
        return Decoded(convert_color(image, msg.encoding, target), target)
    except (RosbagsImageError, cv2.error) as e:
        raise ImageError(f"cannot convert {msg.encoding!r} ({e}); {SUPPORTED_HINT}") from e


def _compressed(msg: Any, max_pixels: int, reduce_for: InputSpec | None) -> Decoded:
    fmt = str(msg.format)
    if "compressedDepth" in fmt:
        raise ImageError(f"format {fmt!r} is a depth image; subscribe the edge to a colour camera")
    buf = np.frombuffer(msg.data, np.uint8)
    if not buf.size:
        raise ImageError(f"0-byte {fmt or 'compressed'} image does not decode (the driver sent no data)")
    header = read_header(buf)
    if header.pixels > max_pixels:
        raise _too_large(f"{header.format.upper()} (by its header)", header.width, header.height, max_pixels)
    flag = cv2.IMREAD_UNCHANGED
    if reduce_for is not None and header.format == JPEG:
        reduction = jpeg_reduction(header.width, header.height, reduce_for)
        flag = _REDUCED.get((reduction, 1 if header.channels == 1 else 3), flag)
    img = cv2.imdecode(buf, flag)
    if img is None:
        raise ImageError(f"{len(buf)}-byte {fmt or header.format} image does not decode (corrupt or truncated "
                         "JPEG/PNG); check the camera's compressed transport")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels not in _DECODED or img.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"decoded {fmt} image has {channels} channels of {img.dtype}; {SUPPORTED_HINT}")
    return Decoded(img, f"{_DECODED[channels]}{16 if img.dtype == np.uint16 else 8}", (header.width, header.height))
