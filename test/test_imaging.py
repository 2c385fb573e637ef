"""Image conversion: every standard encoding, padded rows, rosbags messages and compressed
input give the same RGB pixels; every broken image raises ImageError with the fix."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mtl_split_core.bundle import InputSpec
from mtl_split_core.errors import ImageError
from mtl_split_core.imaging import to_array
from mtl_split_core.preprocess import preprocess

RGB = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
GRAY = RGB[..., 1].copy()
ALPHA = np.full(RGB.shape[:2], 77, np.uint8)


def _rclpy_types():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    return sensor_msgs.Image, sensor_msgs.CompressedImage


def _rosbags_types():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="cam")

    # rosbags messages hold uint8[] as numpy arrays.
    def image(data: bytes, **kw):
        return store.types["sensor_msgs/msg/Image"](header=header, data=np.frombuffer(data, np.uint8), **kw)

    def compressed(data: bytes, **kw):
        return store.types["sensor_msgs/msg/CompressedImage"](header=header, data=np.frombuffer(data, np.uint8), **kw)
    return image, compressed


def image_msg(factory, encoding: str, arr: np.ndarray, pad: int = 0):
    h, w = arr.shape[:2]
    row = arr.nbytes // h
    buf = np.zeros((h, row + pad), np.uint8)
    buf[:, :row] = np.frombuffer(arr.tobytes(), np.uint8).reshape(h, row)
    return factory(height=h, width=w, encoding=encoding, is_bigendian=0, step=row + pad, data=buf.tobytes())


ENCODED = {
    "rgb8": (RGB, RGB),
    "bgr8": (RGB[..., ::-1], RGB),
    "rgba8": (np.dstack([RGB, ALPHA]), RGB),
    "bgra8": (np.dstack([RGB[..., ::-1], ALPHA]), RGB),
    "mono8": (GRAY, np.dstack([GRAY] * 3)),
    "rgb16": (RGB.astype(np.uint16) * 257, RGB),
    "bgr16": (RGB[..., ::-1].astype(np.uint16) * 257, RGB),
    "mono16": (GRAY.astype(np.uint16) * 257, np.dstack([GRAY] * 3)),
}


@pytest.fixture(params=["rclpy", "rosbags"])
def factories(request):
    return _rclpy_types() if request.param == "rclpy" else _rosbags_types()


@pytest.mark.parametrize("encoding", ENCODED)
@pytest.mark.parametrize("pad", [0, 5])
def test_raw_encodings_give_rgb(factories, encoding, pad):
    arr, expected = ENCODED[encoding]
    out = to_array(image_msg(factories[0], encoding, np.ascontiguousarray(arr), pad))
    assert out.dtype == np.uint8 and out.shape == RGB.shape
    np.testing.assert_array_equal(out, expected)


def test_bgr_model_encoding_swaps_channels(factories):
    out = to_array(image_msg(factories[0], "rgb8", RGB), encoding="bgr8")
    np.testing.assert_array_equal(out, RGB[..., ::-1])


@pytest.mark.parametrize("fmt,source,expected", [
    ("png", RGB[..., ::-1], RGB),
    ("png", GRAY, np.dstack([GRAY] * 3)),
    ("png", np.dstack([RGB[..., ::-1], ALPHA]), RGB),
    ("png", RGB[..., ::-1].astype(np.uint16) * 257, RGB),
])
def test_compressed_lossless(factories, fmt, source, expected):
    data = cv2.imencode("." + fmt, np.ascontiguousarray(source))[1].tobytes()
    np.testing.assert_array_equal(to_array(factories[1](format=fmt, data=data)), expected)


def test_compressed_jpeg_close(factories):
    smooth = cv2.resize(RGB, (64, 48), interpolation=cv2.INTER_CUBIC)
    data = cv2.imencode(".jpg", smooth[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])[1].tobytes()
    out = to_array(factories[1](format="rgb8; jpeg compressed bgr8", data=data))
    assert np.abs(out.astype(int) - smooth).mean() < 3


def _bad_cases(factories):
    image, compressed = factories
    jpeg = cv2.imencode(".jpg", RGB)[1].tobytes()
    short = image_msg(image, "rgb8", RGB)
    short.data = short.data[:-3]
    narrow = image_msg(image, "rgb8", RGB)
    narrow.step = 10
    return {
        "truncated data": (short, "truncated"),
        "step too small": (narrow, "step 10"),
        "unknown encoding": (image_msg(image, "yuv9", RGB), "unsupported encoding"),
        "float depth": (image_msg(image, "32FC1", GRAY.astype(np.float32)), "cannot convert"),
        "zero size": (image(height=0, width=0, encoding="rgb8", is_bigendian=0, step=0, data=b""),
                      "empty image"),
        "corrupt jpeg": (compressed(format="jpeg", data=jpeg[: len(jpeg) // 2]), "does not decode"),
        "empty jpeg": (compressed(format="jpeg", data=b""), "does not decode"),
        "depth png": (compressed(format="16UC1; compressedDepth", data=jpeg), "depth image"),
    }


@pytest.mark.parametrize("case", ["truncated data", "step too small", "unknown encoding", "float depth",
                                  "zero size", "corrupt jpeg", "empty jpeg", "depth png"])
def test_bad_images_raise_image_error(factories, case):
    msg, words = _bad_cases(factories)[case]
    with pytest.raises(ImageError, match=words):
        to_array(msg)


def test_preprocess_normalizes_and_resizes():
    spec = InputSpec(width=8, height=4, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    white = np.full((40, 80, 3), 255, np.uint8)
    out = preprocess([white, RGB], spec)
    assert out.shape == (2, 3, 4, 8) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out[0, :, 0, 0], [1.0, 3.0, 1.0], rtol=1e-6)
    same = preprocess([cv2.resize(RGB, (8, 4))], spec)
    assert same.shape == (1, 3, 4, 8)


def test_preprocess_rejects_non_rgb():
    with pytest.raises(ImageError):
        preprocess([GRAY], InputSpec(width=4, height=4))
    with pytest.raises(ImageError):
        preprocess([], InputSpec(width=4, height=4))
