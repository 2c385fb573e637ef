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
import dataclasses
import tracemalloc

import cv2
import lz4.block
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtl_split_core import codec
from mtl_split_core.entropy import EntropyCoder, SymbolTables, quantize_pmf
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

U8, U16, U32 = st.integers(0, 255), st.integers(0, (1 << 16) - 1), st.integers(0, (1 << 32) - 1)
F32 = st.floats(width=32)  # includes NaN, inf, subnormals


def _codes(prefix: str) -> st.SearchStrategy:
    """Mostly a valid enumeration value, sometimes any byte."""
    return st.one_of(st.sampled_from(sorted(codec._constants(SharedFeatures, prefix).values())), U8)


# The server's entropy tables in these tests: 3 channels of int8 symbols.
CODER = EntropyCoder(SymbolTables(-128, quantize_pmf(np.linspace(1, 2, 3 * 256).reshape(3, 256))))
MODEL_SCALE = np.array([0.05], np.float32)


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
    """Every field drawn independently: mostly garbage, sometimes a valid enumeration. The
    data field starts with the shape's varints, so plausible prefixes come first."""
    msg = SharedFeatures()
    msg.schema_version = draw(st.one_of(st.just(SharedFeatures.SCHEMA_VERSION), U8))
    msg.dtype, msg.codec = draw(_codes("DTYPE_")), draw(_codes("CODEC_"))
    msg.quantization, msg.frame = draw(_codes("QUANT_")), draw(_codes("FRAME_"))
    msg.sequence = draw(U16)
    dims = draw(st.lists(st.one_of(st.integers(1, 64), st.integers(0, 1 << 16), U32), max_size=10))
    layout = codec._varint(len(dims)) + b"".join(codec._varint(d) for d in dims)
    msg.data = (layout if draw(st.booleans()) else b"") + draw(st.binary(max_size=512))
    return Shown(msg)


def _bomb(dtype: str, c: str, count: int) -> codec.EncodedFeatures:
    """A consistent payload of `count` zeros: a few bytes on the wire, count elements decoded."""
    raw = bytes(count * codec.DTYPES[dtype].itemsize)
    data = (zstandard.ZstdCompressor().compress(raw) if c == "zstd"
            else lz4.block.compress(raw, store_size=False) if c == "lz4" else raw)
    quantized = dtype in codec.QUANTIZED
    return codec.EncodedFeatures(dtype, (count,), np.ones(int(quantized), np.float32),
                                 np.zeros(int(quantized), np.int32), c, data, "tensor" if quantized else "none")


def _valid(draw: st.DrawFn) -> codec.EncodedFeatures:
    dtype, c = draw(st.sampled_from(list(codec.DTYPES))), draw(st.sampled_from(codec.CODECS))
    if c == "entropy":  # the bundle's int8 symbols, 3 channels
        x = np.random.default_rng(draw(st.integers(0, 1 << 16))).standard_normal((3, 2, 2)).astype(np.float32)
        return codec.encode(x, "int8", "entropy", scale=MODEL_SCALE, zero_point=0, coder=CODER)
    if draw(st.booleans()):
        shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
        x = np.random.default_rng(draw(st.integers(0, 1 << 16))).standard_normal(shape).astype(np.float32)
        return codec.encode(x, dtype, c, per_channel=draw(st.booleans()))
    # around the limit: elements x 4 bytes of float32 just below or above MAX_BYTES
    return _bomb(dtype, c, MAX_BYTES // 4 + draw(st.integers(-2, 2)))


@st.composite
def mutated_messages(draw: st.DrawFn) -> Shown:
    """A valid message (small, entropy-coded, or a compressible one right at the size limit)
    with one to three fields broken: deep checks see nearly-valid input, where bugs hide."""
    msg = codec.to_message(_valid(draw), SharedFeatures())
    data = bytearray(msg.data)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(["schema_version", "dtype", "codec", "quantization", "frame", "truncate",
                                      "extend", "flip", "flip_layout"]))
        if field == "schema_version":
            msg.schema_version = draw(U8)
        elif field in ("dtype", "codec", "quantization", "frame"):
            prefix = {"dtype": "DTYPE_", "codec": "CODEC_", "quantization": "QUANT_", "frame": "FRAME_"}[field]
            setattr(msg, field, draw(_codes(prefix)))
        elif field == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)):]
        elif field == "extend":
            data += draw(st.binary(min_size=1, max_size=64))
        elif field in ("flip", "flip_layout") and data:
            i = draw(st.integers(0, min(len(data), 12 if field == "flip_layout" else len(data)) - 1))
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
    shape = None
    try:
        enc = codec.from_message(msg)
        shape = enc.shape
        if enc.quantization == "model":  # what ServerModel does: the bundle's scale
            enc = dataclasses.replace(enc, scale=MODEL_SCALE, zero_point=np.zeros(1, np.int32))
        y = codec.decode(enc, max_bytes=MAX_BYTES, coder=CODER)
    except CodecError:
        y = None
    peak = tracemalloc.get_traced_memory()[1] - before
    assert peak <= PEAK_LIMIT, f"decoding allocated {peak} bytes at peak (limit {PEAK_LIMIT})"
    if y is not None:
        assert y.dtype == np.float32 and y.shape == shape
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
