"""Codec: lossless paths are bit-exact, quantized paths stay within one step, and every
inconsistent payload raises CodecError before allocating."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mtl_split_core import codec
from mtl_split_core.codec import CodecError, EncodedFeatures, decode, encode
from mtl_split_core.entropy import EntropyCoder, SymbolTables, quantize_pmf

CODER = EntropyCoder(SymbolTables(-128, quantize_pmf(np.ones((3, 256)))))
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=9)
finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
tensors = shapes.flatmap(lambda s: hnp.arrays(np.float32, s, elements=finite))
codecs = st.sampled_from(codec.BYTE_CODECS)


@settings(max_examples=150, deadline=None)
@given(x=tensors, c=codecs)
def test_float32_roundtrip_is_bit_exact(x, c):
    y = decode(encode(x, "float32", c))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert y.tobytes() == x.tobytes()


@settings(max_examples=100, deadline=None)
@given(x=tensors, c=codecs)
def test_float16_roundtrip_equals_numpy_cast(x, c):
    y = decode(encode(x, "float16", c))
    np.testing.assert_array_equal(y, x.astype(np.float16).astype(np.float32))


@settings(max_examples=200, deadline=None)
@given(x=tensors, c=codecs, dt=st.sampled_from(codec.QUANTIZED), per_channel=st.booleans())
def test_quantized_roundtrip_within_one_step(x, c, dt, per_channel):
    enc = encode(x, dt, c, per_channel=per_channel)
    y = decode(enc)
    assert y.shape == x.shape
    step = enc.scale.reshape((-1,) + (1,) * (x.ndim - 1)) if per_channel else enc.scale[0]
    assert np.all(np.abs(y - x) <= step * (1 + 1e-5) + 1e-30)
    # The quantized bytes themselves survive entropy coding exactly.
    assert codec._decompress(enc) == encode(x, dt, "none", per_channel=per_channel).data


def test_per_channel_beats_per_tensor_on_unequal_channels():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 4, 4)) * np.logspace(-3, 2, 8)[:, None, None]).astype(np.float32)
    err = lambda pc: np.abs(decode(encode(x, "int8", per_channel=pc)) - x)[0].max()
    assert err(True) < err(False) / 10


def test_fixed_scale_is_used_as_given_and_not_sent():
    x = np.linspace(-1, 1, 50, dtype=np.float32)
    enc = encode(x, "int8", scale=1 / 127, zero_point=0)
    assert enc.scale.tolist() == [np.float32(1 / 127)] and enc.zero_point.tolist() == [0]
    # ndim + one dimension + the source frame's width and height (0 0: not from a camera)
    assert enc.quantization == "model" and enc.wire_bytes == len(enc.data) + 4
    np.testing.assert_allclose(decode(enc), x, atol=0.5 / 127 + 1e-6)


def test_compression_shrinks_sparse_features():
    x = np.zeros((576, 7, 7), np.float32)
    x[::7] = 1.5
    for c in ("zstd", "lz4"):
        assert len(encode(x, "int8", c).data) < x.size // 4


@pytest.mark.parametrize("bad", [np.array([np.nan], np.float32), np.array([np.inf], np.float32),
                                 np.zeros((0, 3), np.float32), np.float32(1.0)])
def test_encode_rejects_unencodable_tensors(bad):
    with pytest.raises(CodecError):
        encode(bad)


def test_encode_rejects_unknown_dtype_and_codec():
    with pytest.raises(CodecError, match="unknown dtype"):
        encode(np.ones(3), "bfloat16")
    with pytest.raises(CodecError, match="unknown codec"):
        encode(np.ones(3), codec="gzip")


def _good(dtype="int8", c="zstd") -> EncodedFeatures:
    return encode(np.arange(48, dtype=np.float32).reshape(3, 4, 4) - 20, dtype, c, per_channel=True)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(dtype="complex64"), "unknown dtype"),
        (dict(codec="brotli"), "unknown codec"),
        (dict(shape=(3, 4, 5)), "needs"),
        (dict(shape=(3, 0, 16)), "positive"),
        (dict(shape=()), "dimensions"),
        (dict(shape=(1,) * 9), "dimensions"),
        (dict(shape=(1 << 20, 1 << 20, 1 << 10)), "limit"),
        (dict(scale=np.ones(2, np.float32), zero_point=np.zeros(2, np.int32)), "scale/zero_point"),
        (dict(quantization="tensor"), "scale/zero_point"),
        (dict(quantization="none"), "quantization mode"),
        (dict(frame="delta"), "delta"),
        (dict(codec="entropy"), "entropy"),
        (dict(scale=np.array([1, 0, 1], np.float32)), "scale must be"),
        (dict(scale=np.array([1, np.nan, 1], np.float32)), "scale must be"),
        (dict(zero_point=np.array([0, 500, 0])), "zero_point outside"),
    ],
)
def test_decode_rejects_inconsistent_headers(change, match):
    with pytest.raises(CodecError, match=match):
        decode(dataclasses.replace(_good(), **change))


@pytest.mark.parametrize("c", codec.BYTE_CODECS)
def test_decode_rejects_truncated_and_oversized_data(c):
    good = _good("float32", c)
    for data in (bytes(good.data)[:-1], bytes(good.data)[: len(good.data) // 2], bytes(good.data) + b"\0" * 7, b""):
        with pytest.raises(CodecError):
            decode(dataclasses.replace(good, data=data))


def test_decode_rejects_float_payload_with_quant_params_and_nan_payload():
    good = _good("float32", "none")
    with pytest.raises(CodecError, match="no scale"):
        decode(dataclasses.replace(good, scale=np.ones(1, np.float32), zero_point=np.zeros(1, np.int32)))
    nan = np.full(good.shape, np.nan, np.float32).tobytes()
    with pytest.raises(CodecError, match="NaN"):
        decode(dataclasses.replace(good, data=nan))


def test_decompression_bomb_is_bounded():
    # A tiny zstd frame that expands to 256 MiB; raw_size claims 48 bytes.
    import zstandard

    bomb = zstandard.ZstdCompressor().compress(b"\0" * (256 << 20))
    with pytest.raises(CodecError):
        decode(dataclasses.replace(_good("float32", "zstd"), data=bomb))


@settings(max_examples=300, deadline=None)
@given(
    dtype=st.sampled_from(list(codec.DTYPES) + ["x"]),
    c=st.sampled_from(list(codec.CODECS) + ["y"]),
    shape=st.lists(st.integers(-2, 1 << 40), max_size=10).map(tuple),
    scale=st.lists(st.floats(allow_nan=True, width=32), max_size=4),
    zp=st.lists(st.integers(-1000, 1000), max_size=4),
    data=st.binary(max_size=256),
    quantization=st.sampled_from(list(codec.QUANTIZATIONS) + ["z"]),
    frame=st.sampled_from(list(codec.FRAMES) + ["z"]),
)
def test_fuzzed_payloads_raise_only_codec_error(dtype, c, shape, scale, zp, data, quantization, frame):
    enc = EncodedFeatures(dtype, shape, np.array(scale, np.float32), np.array(zp, np.int64), c, data,
                          quantization, frame)
    try:
        y = decode(enc, max_bytes=1 << 16, coder=CODER)
    except CodecError:
        return
    assert y.nbytes <= 4 * (1 << 16) and y.shape == shape
