"""Feature tensor <-> SharedFeatures payload: quantization, entropy coding, validation.

Two layers:
- `encode` / `decode` turn a float32 tensor into an `EncodedFeatures` (the message's
  payload fields as numpy/bytes) and back.
- `to_message` / `from_message` copy those fields into and out of a SharedFeatures message
  without Python lists. They take the message class or instance as an argument and read
  the DTYPE_*/CODEC_*/SCHEMA_VERSION constants from it, so the numbers live only in
  msg/SharedFeatures.msg and this module never imports ROS.

Everything that arrives from the network is untrusted: `decode` checks every field against
every other before it allocates, and raises CodecError (one type, a message saying what is
wrong) for anything inconsistent. The float32 tensor it returns is at most `max_bytes`,
whatever the wire dtype, and decoding needs at most 2.25x that at its peak (one
decompressed or converted copy plus the NaN check's mask; test_fuzz_messages measures it).
"""
from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any

import lz4.block
import numpy as np
import zstandard

from .errors import CodecError
from .options import DEFAULT_MAX_BYTES

DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
}
CODECS = ("none", "zstd", "lz4")
QUANTIZED = ("int8", "uint8")
MAX_NDIM = 8

_zstd_decompressor = zstandard.ZstdDecompressor()


@dataclass(frozen=True)
class EncodedFeatures:
    """The payload fields of one SharedFeatures message (no header, no model_id)."""

    dtype: str
    shape: tuple[int, ...]
    scale: np.ndarray  # float32; empty for float dtypes, else 1 or shape[0] values
    zero_point: np.ndarray  # int32; same length as scale
    codec: str
    raw_size: int
    data: bytes

    @property
    def wire_bytes(self) -> int:
        """Bytes this payload adds to a message (tensor + quantization parameters)."""
        return len(self.data) + 8 * len(self.scale) + 4 * len(self.shape)


def _qrange(dtype: str) -> tuple[int, int]:
    info = np.iinfo(DTYPES[dtype])
    return int(info.min), int(info.max)


def quant_params(x: np.ndarray, dtype: str, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Affine scale/zero_point covering x's range (and 0, so zero stays exact)."""
    qmin, qmax = _qrange(dtype)
    flat = x.reshape(x.shape[0], -1) if per_channel else x.reshape(1, -1)
    lo = np.minimum(flat.min(axis=1), 0.0).astype(np.float64)
    hi = np.maximum(flat.max(axis=1), 0.0).astype(np.float64)
    span = hi - lo
    # At least float32's smallest normal: a subnormal range would round the scale to 0 in
    # float32, and the receiver rightly refuses a zero scale.
    scale = np.maximum(np.where(span > 0, span / (qmax - qmin), 1.0), np.finfo(np.float32).tiny)
    zero_point = np.clip(np.round(qmin - lo / scale), qmin, qmax)
    return scale.astype(np.float32), zero_point.astype(np.int32)


def _broadcast(params: np.ndarray, ndim: int) -> np.ndarray:
    """Per-channel params (C,) -> (C, 1, 1, ...) against a tensor of ndim dimensions."""
    return params.reshape((-1,) + (1,) * (ndim - 1)) if params.size > 1 else params.reshape(())


def encode(
    x: np.ndarray,
    dtype: str = "float32",
    codec: str = "none",
    level: int = 3,
    per_channel: bool = False,
    scale: np.ndarray | float | None = None,
    zero_point: np.ndarray | int | None = None,
) -> EncodedFeatures:
    """Encode one frame's features. Quantized dtypes compute scale/zero_point from x
    unless fixed ones are given (e.g. the learned bottleneck's)."""
    if dtype not in DTYPES:
        raise CodecError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if codec not in CODECS:
        raise CodecError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0 or x.ndim > MAX_NDIM or x.size == 0:
        raise CodecError(f"features must have 1..{MAX_NDIM} non-empty dimensions, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise CodecError("features contain NaN or inf; check the backbone's input and weights")

    if dtype in QUANTIZED:
        if scale is None:
            s, zp = quant_params(x, dtype, per_channel)
        else:
            s = np.atleast_1d(np.asarray(scale, np.float32))
            zp = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, np.int32))
        qmin, qmax = _qrange(dtype)
        q = np.round(x / _broadcast(s, x.ndim)) + _broadcast(zp, x.ndim)
        tensor = np.clip(q, qmin, qmax).astype(DTYPES[dtype])
    else:
        s, zp = np.zeros(0, np.float32), np.zeros(0, np.int32)
        tensor = x.astype(DTYPES[dtype])

    raw = tensor.tobytes()
    if codec == "zstd":
        data = zstandard.ZstdCompressor(level=level).compress(raw)
    elif codec == "lz4":
        data = lz4.block.compress(raw, store_size=False, compression=max(level, 0))
    else:
        data = raw
    return EncodedFeatures(dtype, tuple(int(d) for d in x.shape), s, zp, codec, len(raw), data)


def _check_header(enc: EncodedFeatures, max_bytes: int) -> np.dtype:
    if enc.dtype not in DTYPES:
        raise CodecError(f"unknown dtype {enc.dtype!r}")
    if enc.codec not in CODECS:
        raise CodecError(f"unknown codec {enc.codec!r}")
    shape = enc.shape
    if not 1 <= len(shape) <= MAX_NDIM or any(d <= 0 for d in shape):
        raise CodecError(f"shape {list(shape)} must have 1..{MAX_NDIM} positive dimensions")
    dt = DTYPES[enc.dtype]
    # Python ints: no overflow however large the claimed dimensions are.
    count = 1
    for d in shape:
        count *= int(d)
    expected = count * dt.itemsize
    # The limit is on what the receiver will hold: the float32 tensor, 4x an int8 payload.
    decoded = count * DTYPES["float32"].itemsize
    if decoded > max_bytes:
        raise CodecError(
            f"shape {list(shape)} decodes to {decoded} bytes of float32, over the {max_bytes}-byte limit "
            "(raise max_bytes / max_feature_bytes if this model's features really are that large)"
        )
    if enc.raw_size != expected:
        raise CodecError(
            f"raw_size {enc.raw_size} does not match shape {list(shape)} x {enc.dtype} = {expected} bytes"
        )
    n = len(enc.scale)
    if enc.dtype in QUANTIZED:
        if n not in (1, shape[0]) or len(enc.zero_point) != n:
            raise CodecError(
                f"{enc.dtype} needs 1 or {shape[0]} scale/zero_point values, got "
                f"{n} scale and {len(enc.zero_point)} zero_point"
            )
        if not (np.isfinite(enc.scale).all() and (enc.scale > 0).all()):
            raise CodecError("quantization scale must be finite and > 0")
        qmin, qmax = _qrange(enc.dtype)
        if ((enc.zero_point < qmin) | (enc.zero_point > qmax)).any():
            raise CodecError(f"zero_point outside the {enc.dtype} range [{qmin}, {qmax}]")
    elif n or len(enc.zero_point):
        raise CodecError(f"{enc.dtype} features carry no scale/zero_point, got {n}")
    return dt


def _decompress(enc: EncodedFeatures) -> bytes | memoryview:
    data = enc.data
    if enc.codec == "none":
        if len(data) != enc.raw_size:
            raise CodecError(f"data has {len(data)} bytes, raw_size says {enc.raw_size} (truncated or oversized)")
        return data
    try:
        if enc.codec == "zstd":
            # max_output_size bounds the allocation even if the frame header lies.
            out = _zstd_decompressor.decompress(data, max_output_size=enc.raw_size, allow_extra_data=False)
        else:
            out = lz4.block.decompress(data, uncompressed_size=enc.raw_size)
    except (zstandard.ZstdError, lz4.block.LZ4BlockError, ValueError) as e:
        raise CodecError(f"{enc.codec} payload does not decompress ({e}); truncated or corrupt data") from e
    if len(out) != enc.raw_size:
        raise CodecError(f"{enc.codec} payload decompressed to {len(out)} bytes, raw_size says {enc.raw_size}")
    return out


def decode(enc: EncodedFeatures, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Payload -> float32 tensor of enc.shape. Raises CodecError on any inconsistency."""
    dt = _check_header(enc, max_bytes)
    tensor = np.frombuffer(_decompress(enc), dtype=dt).reshape(enc.shape)
    out = tensor.astype(np.float32)
    if enc.dtype in QUANTIZED:
        # In place: one float32 tensor, no temporaries of its size. A huge scale overflows
        # to inf, which the check below refuses.
        out -= _broadcast(enc.zero_point, tensor.ndim).astype(np.float32)
        with np.errstate(over="ignore"):
            out *= _broadcast(enc.scale, tensor.ndim)
    if not np.isfinite(out).all():
        raise CodecError("decoded features contain NaN or inf; corrupt payload or quantization scale")
    return out


# --- SharedFeatures message <-> EncodedFeatures -------------------------------------------

def _constants(msg_type: type, prefix: str) -> dict[str, int]:
    """{'float32': DTYPE_FLOAT32, ...} read from the generated message class."""
    return {name[len(prefix):].lower(): getattr(msg_type, name)
            for name in dir(msg_type) if name.startswith(prefix)}


def _float32_array(values: np.ndarray) -> array.array:
    a = array.array("f")
    a.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return a


def _int32_array(values: np.ndarray) -> array.array:
    a = array.array("i")
    a.frombytes(np.ascontiguousarray(values, dtype=np.int32).tobytes())
    return a


def to_message(enc: EncodedFeatures, msg: Any) -> Any:
    """Fill a SharedFeatures instance's payload fields (header, model_id, timing are the
    caller's). Returns msg."""
    msg_type = type(msg)
    msg.schema_version = msg_type.SCHEMA_VERSION
    msg.dtype = _constants(msg_type, "DTYPE_")[enc.dtype]
    msg.codec = _constants(msg_type, "CODEC_")[enc.codec]
    msg.shape = array.array("I", enc.shape)
    msg.scale = _float32_array(enc.scale)
    msg.zero_point = _int32_array(enc.zero_point)
    msg.raw_size = enc.raw_size
    msg.data = enc.data
    return msg


def from_message(msg: Any) -> EncodedFeatures:
    """Read a received SharedFeatures into an EncodedFeatures (no copy of the data);
    check schema version and enumerations. Pass the result to decode()."""
    msg_type = type(msg)
    if msg.schema_version != msg_type.SCHEMA_VERSION:
        raise CodecError(
            f"schema_version {msg.schema_version} != {msg_type.SCHEMA_VERSION}: edge and server run "
            "different mtl_split releases; update both to the same version"
        )
    dtypes = {v: k for k, v in _constants(msg_type, "DTYPE_").items()}
    codecs = {v: k for k, v in _constants(msg_type, "CODEC_").items()}
    if msg.dtype not in dtypes:
        raise CodecError(f"unknown dtype code {msg.dtype} (known: {sorted(dtypes)})")
    if msg.codec not in codecs:
        raise CodecError(f"unknown codec code {msg.codec} (known: {sorted(codecs)})")
    return EncodedFeatures(
        dtype=dtypes[msg.dtype],
        shape=tuple(int(d) for d in msg.shape),
        scale=np.asarray(msg.scale, dtype=np.float32).reshape(-1),
        zero_point=np.asarray(msg.zero_point, dtype=np.int64).reshape(-1),
        codec=codecs[msg.codec],
        raw_size=int(msg.raw_size),
        data=memoryview(msg.data) if len(msg.data) else b"",
    )
