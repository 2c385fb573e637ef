"""Fuzzing what arrives from the network, as the nodes receive it.

Server side: any field of a SharedFeatures message may hold anything; after a trip through
real CDR serialization, `codec.from_message` + `codec.decode` either return this message's
tensor or raise CodecError - no other exception, and never more memory than max_bytes allows
(measured with tracemalloc, which sees numpy's and the codecs' buffers).
Edge side: any Image / CompressedImage field may hold anything; `imaging.to_array` returns an
HxWx3 uint8 image or raises ImageError.
"""
from __future__ import annotations

import array
import tracemalloc

import cv2
import lz4.block
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtl_split_core import codec
from mtl_split_core.errors import CodecError, ImageError
from mtl_split_core.imaging import to_array
from rosbags.image import ImageError as RosbagsImageError
from rosbags.image.image import to_cvtype

msgs = pytest.importorskip("mtl_split.msg", reason="needs the colcon-built messages (make setup)")
sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 wheels (make setup)")
serialization = pytest.importorskip("rclpy.serialization")
SharedFeatures = msgs.SharedFeatures

MAX_BYTES = 1 << 16  # the receiver's max_feature_bytes in these tests
# decode() holds the decoded float32 tensor (<= MAX_BYTES), at most one decompressed or
# float32 copy of the same size and a bool mask for the NaN check; plus interpreter noise.
PEAK_LIMIT = int(2.5 * MAX_BYTES) + (16 << 10)

U8, U32 = st.integers(0, 255), st.integers(0, (1 << 32) - 1)
I32 = st.integers(-(1 << 31), (1 << 31) - 1)
F32 = st.floats(width=32)  # includes NaN, inf, subnormals
DTYPE_CODES = st.one_of(st.sampled_from(sorted(codec._constants(SharedFeatures, "DTYPE_").values())), U8)
CODEC_CODES = st.one_of(st.sampled_from(sorted(codec._constants(SharedFeatures, "CODEC_").values())), U8)
# Mostly plausible dimensions (so deep checks run), sometimes anything a uint32 holds.
DIM = st.one_of(st.integers(1, 64), st.integers(0, 1 << 16), U32)


class Shown:
    """A drawn message with a short repr: hypothesis prints failing examples, and a 64 KiB
    data field would bury the field that matters."""

    def __init__(self, msg: object) -> None:
        self.msg = msg

    def __repr__(self) -> str:
        def short(v: object) -> str:
            if isinstance(v, (bytes, bytearray, array.array, list)) and len(v) > 16:
                return f"<{len(v)} items: {list(v[:8])}...>"
            return repr(v)
        fields = self.msg.get_fields_and_field_types()
        return f"{type(self.msg).__name__}({', '.join(f'{k}={short(getattr(self.msg, k))}' for k in fields)})"


@st.composite
def random_messages(draw: st.DrawFn) -> Shown:
    """Every field drawn independently: mostly garbage, sometimes a valid enumeration."""
    msg = SharedFeatures()
    msg.schema_version = draw(st.one_of(st.just(SharedFeatures.SCHEMA_VERSION), U8))
    msg.dtype, msg.codec = draw(DTYPE_CODES), draw(CODEC_CODES)
    msg.shape = draw(st.lists(DIM, max_size=10))
    n = draw(st.integers(0, 4))
    msg.scale = draw(st.lists(F32, min_size=n, max_size=n))
    msg.zero_point = draw(st.lists(I32, min_size=n, max_size=n))
    msg.raw_size = draw(st.one_of(U32, st.integers(0, 4096)))
    msg.data = draw(st.binary(max_size=512))
    return Shown(msg)


def _bomb(dtype: str, c: str, count: int) -> codec.EncodedFeatures:
    """A consistent payload of `count` zeros: a few bytes on the wire, count elements decoded."""
    raw = bytes(count * codec.DTYPES[dtype].itemsize)
    data = (zstandard.ZstdCompressor().compress(raw) if c == "zstd"
            else lz4.block.compress(raw, store_size=False) if c == "lz4" else raw)
    quantized = dtype in codec.QUANTIZED
    return codec.EncodedFeatures(dtype, (count,), np.ones(int(quantized), np.float32),
                                 np.zeros(int(quantized), np.int32), c, len(raw), data)


@st.composite
def mutated_messages(draw: st.DrawFn) -> Shown:
    """A valid message (small, or a compressible one right at the size limit) with one to
    three fields broken: deep checks see nearly-valid input, where bugs hide."""
    dtype, c = draw(st.sampled_from(list(codec.DTYPES))), draw(st.sampled_from(codec.CODECS))
    if draw(st.booleans()):
        shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
        x = np.random.default_rng(draw(st.integers(0, 1 << 16))).standard_normal(shape).astype(np.float32)
        enc = codec.encode(x, dtype, c, per_channel=draw(st.booleans()))
    else:  # around the limit: elements x 4 bytes of float32 just below or above MAX_BYTES
        enc = _bomb(dtype, c, MAX_BYTES // 4 + draw(st.integers(-2, 2)))
    msg = codec.to_message(enc, SharedFeatures())
    data = bytearray(enc.data)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(["schema_version", "dtype", "codec", "shape", "scale", "zero_point",
                                      "raw_size", "truncate", "extend", "flip"]))
        if field == "schema_version":
            msg.schema_version = draw(U8)
        elif field in ("dtype", "codec"):
            setattr(msg, field, draw(DTYPE_CODES if field == "dtype" else CODEC_CODES))
        elif field == "shape":
            msg.shape = draw(st.lists(DIM, max_size=10))
        elif field == "scale":
            msg.scale = draw(st.lists(F32, max_size=8))
        elif field == "zero_point":
            msg.zero_point = draw(st.lists(I32, max_size=8))
        elif field == "raw_size":
            msg.raw_size = draw(st.one_of(U32, st.integers(max(enc.raw_size - 8, 0), enc.raw_size + 8)))
        elif field == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)):]
        elif field == "extend":
            data += draw(st.binary(min_size=1, max_size=64))
        elif field == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    msg.data = bytes(data)
    return Shown(msg)


@pytest.fixture(scope="module")
def traced():
    tracemalloc.start()
    yield
    tracemalloc.stop()


def _received(msg: SharedFeatures) -> SharedFeatures:
    """The message as a subscriber gets it: through CDR serialization."""
    return serialization.deserialize_message(serialization.serialize_message(msg), SharedFeatures)


def _check_decode(drawn: Shown) -> None:
    msg = _received(drawn.msg)
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    try:
        y = codec.decode(codec.from_message(msg), max_bytes=MAX_BYTES)
    except CodecError:
        y = None
    peak = tracemalloc.get_traced_memory()[1] - before
    assert peak <= PEAK_LIMIT, f"decoding allocated {peak} bytes at peak (limit {PEAK_LIMIT})"
    if y is not None:
        assert y.dtype == np.float32 and y.shape == tuple(msg.shape)
        assert y.nbytes <= MAX_BYTES and np.isfinite(y).all()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=random_messages())
def test_random_features_messages_raise_only_codec_error(traced, msg):
    _check_decode(msg)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=mutated_messages())
def test_mutated_features_messages_raise_only_codec_error(traced, msg):
    _check_decode(msg)


@pytest.mark.parametrize("dtype", list(codec.DTYPES))
def test_limit_counts_the_decoded_float32_tensor(dtype):
    """max_bytes bounds what the receiver holds (float32), whatever the wire dtype."""
    at_limit, over = _bomb(dtype, "zstd", MAX_BYTES // 4), _bomb(dtype, "zstd", MAX_BYTES // 4 + 1)
    assert codec.decode(at_limit, max_bytes=MAX_BYTES).nbytes == MAX_BYTES
    with pytest.raises(CodecError, match="limit"):
        codec.decode(over, max_bytes=MAX_BYTES)


# --- camera images at the edge -----------------------------------------------------------------

ENCODINGS = ["rgb8", "bgr8", "mono8", "mono16", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bayer_rggb8",
             "bayer_gbrg16", "yuv422", "yuv422_yuy2", "uyvy", "yuyv", "nv21", "8UC1", "8UC3", "8UC4", "16UC1",
             "16SC3", "32FC1", "32SC1", "64FC1", "8UC5", "", "foo", "rgb8; jpeg compressed bgr8"]


def _mostly(common: st.SearchStrategy, rare: st.SearchStrategy) -> st.SearchStrategy:
    """common about nine times in ten: enough plausible input to reach the converters."""
    return st.integers(0, 9).flatmap(lambda k: rare if k == 0 else common)


@st.composite
def raw_images(draw: st.DrawFn) -> Shown:
    msg = sensor_msgs.Image(encoding=draw(_mostly(st.sampled_from(ENCODINGS), st.text(max_size=12))),
                            height=draw(_mostly(st.integers(1, 24), U32)),
                            width=draw(_mostly(st.integers(1, 24), U32)),
                            is_bigendian=draw(st.integers(0, 1)))
    try:  # the row size the encoding needs, so that many images pass the checks
        depth, _, _, channels = to_cvtype(msg.encoding)
        row = msg.width * channels * depth // 8
    except RosbagsImageError:
        row = msg.width * 3
    msg.step = draw(_mostly(st.integers(row, row + 4), st.one_of(st.integers(0, 200), U32)))
    size = msg.step * msg.height
    # Often exactly the bytes step x height promises, so the converters themselves are fuzzed.
    exact = size <= 1 << 16 and draw(st.integers(0, 3)) > 0
    msg.data = draw(st.binary(min_size=size, max_size=size) if exact else st.binary(max_size=2048))
    return Shown(msg)


def _encoded(draw: st.DrawFn) -> bytes:
    """A real PNG/JPEG of random pixels, grey/colour/alpha, 8 or 16 bits (PNG)."""
    ext = draw(st.sampled_from([".png", ".jpg"]))
    channels = draw(st.sampled_from([1, 3, 4] if ext == ".png" else [1, 3]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16] if ext == ".png" else [np.uint8]))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    pixels = np.random.default_rng(draw(st.integers(0, 1 << 16))).integers(
        0, np.iinfo(dtype).max, (h, w, channels), dtype=dtype)
    return cv2.imencode(ext, pixels)[1].tobytes()


@st.composite
def compressed_images(draw: st.DrawFn) -> Shown:
    fmt = draw(st.one_of(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth",
                                          "", "tiff"]), st.text(max_size=16)))
    data = bytearray(_encoded(draw) if draw(st.booleans()) else draw(st.binary(max_size=512)))
    if data and draw(st.booleans()):  # truncated or bit-flipped
        if draw(st.booleans()):
            del data[draw(st.integers(0, len(data) - 1)):]
        else:
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    msg = sensor_msgs.CompressedImage(format=fmt)
    msg.data = bytes(data)
    return Shown(msg)


def _check_image(drawn: Shown, encoding: str) -> None:
    try:
        img = to_array(drawn.msg, encoding)
    except ImageError:
        return
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and img.flags.c_contiguous


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(msg=raw_images(), encoding=st.sampled_from(["rgb8", "bgr8"]))
def test_random_raw_images_raise_only_image_error(msg, encoding):
    _check_image(msg, encoding)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=compressed_images(), encoding=st.sampled_from(["rgb8", "bgr8"]))
def test_random_compressed_images_raise_only_image_error(msg, encoding):
    _check_image(msg, encoding)
