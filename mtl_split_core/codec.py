"""Feature tensor <-> SharedFeatures payload: quantization, coding, validation.

Two layers:
- `encode` / `decode` turn a float32 tensor into an `EncodedFeatures` (the message's
  payload as numpy/bytes) and back. The entropy codec codes integer symbols with a bundle's
  learned tables (mtl_split_core.entropy); temporal coding across frames builds on the same
  symbols (mtl_split_core.temporal).
- `to_message` / `from_message` copy those fields into and out of a SharedFeatures message
  without Python lists. They take the message class or instance as an argument and read
  the DTYPE_*/CODEC_*/QUANT_*/FRAME_*/SCHEMA_VERSION constants from it, so the numbers live
  only in msg/SharedFeatures.msg and this module never imports ROS.

The message's `data` starts with the tensor's layout, compactly: ndim and each dimension as
LEB128 varints (4 bytes for a 16x2x2 bottleneck), the source camera frame's width and height
as varints (2 bytes each from 128 to 16383 px; 0x0: features not made from a camera frame),
then, only for per-frame quantization, the float32 scales and int32 zero points; the coded
tensor follows. The source size is what lets the server put dense results back on the
camera's pixel grid. A learned bottleneck's fixed
quantization is the bundle's (QUANT_MODEL) and costs nothing on the wire.

Everything that arrives from the network is untrusted: `decode` checks every field against
every other before it allocates, and raises CodecError (one type, a message saying what is
wrong) for anything inconsistent. The float32 tensor it returns is at most `max_bytes`,
whatever the wire dtype, and decoding needs at most 2.25x that at its peak (one
decompressed or converted copy plus the NaN check's mask; test_fuzz_messages measures it).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lz4.block
import numpy as np
import zstandard

from .entropy import EntropyCoder
from .errors import CodecError, SchemaError
from .options import DEFAULT_MAX_BYTES

DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
}
CODECS = ("none", "zstd", "lz4", "entropy")
BYTE_CODECS = ("none", "zstd", "lz4")  # codecs of the tensor's bytes: no tables needed
QUANTIZED = ("int8", "uint8")
QUANTIZATIONS = ("none", "model", "tensor", "channel")
FRAMES = ("key", "delta", "skip")
SEQUENCE_MOD = 1 << 16  # SharedFeatures.sequence is a uint16
MAX_NDIM = 8

_zstd_decompressor = zstandard.ZstdDecompressor()


def fingerprint(model_id: str) -> bytes:
    """The 64-bit model identity every SharedFeatures carries: first 8 bytes of sha256(model_id)."""
    return hashlib.sha256(model_id.encode()).digest()[:8]


@dataclass(frozen=True)
class EncodedFeatures:
    """The payload of one SharedFeatures message (no header, fingerprint or timing).

    `data` is the coded tensor alone; to_message prefixes it with the shape and, for
    per-frame quantization, the scales and zero points."""

    dtype: str
    shape: tuple[int, ...]
    scale: np.ndarray  # float32; empty for float dtypes, else 1 or shape[0] values
    zero_point: np.ndarray  # int32; same length as scale
    codec: str
    data: bytes
    quantization: str = "none"  # QUANTIZATIONS: where scale/zero_point come from
    frame: str = "key"  # FRAMES: coded alone, against the stream's previous frame, or that frame unchanged
    sequence: int = 0  # per camera stream (mod 2^16)
    source_size: tuple[int, int] = (0, 0)  # camera frame (width, height); (0, 0): not from a camera frame

    @property
    def raw_size(self) -> int:
        """Bytes of the tensor in its dtype before coding."""
        count = 1
        for d in self.shape:
            count *= int(d)
        return count * DTYPES[self.dtype].itemsize if self.dtype in DTYPES else 0

    @property
    def wire_bytes(self) -> int:
        """Bytes of the message's data field: shape, source frame size, quantization parameters
        (if sent), tensor."""
        return len(_layout(self)) + len(self.data)


def symbol_range(dtype: str) -> tuple[int, int]:
    """Smallest and largest value of an integer dtype."""
    info = np.iinfo(DTYPES[dtype])
    return int(info.min), int(info.max)


def quant_params(x: np.ndarray, dtype: str, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Affine scale/zero_point covering x's range (and 0, so zero stays exact)."""
    qmin, qmax = symbol_range(dtype)
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


def _check_tensor(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0 or x.ndim > MAX_NDIM or x.size == 0:
        raise CodecError(f"features must have 1..{MAX_NDIM} non-empty dimensions, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise CodecError("features contain NaN or inf; check the backbone's input and weights")
    return x


def quantize(x: np.ndarray, dtype: str, per_channel: bool = False, scale: np.ndarray | float | None = None,
             zero_point: np.ndarray | int | None = None) -> tuple[np.ndarray, EncodedFeatures]:
    """x -> (integer tensor, EncodedFeatures without data). A given scale (the bundle's
    learned grid) is QUANT_MODEL: the receiver has it, the wire does not carry it."""
    if dtype not in QUANTIZED:
        raise CodecError(f"quantize needs an integer dtype ({', '.join(QUANTIZED)}), got {dtype!r}")
    x = _check_tensor(x)
    if scale is None:
        s, zp = quant_params(x, dtype, per_channel)
        mode = "channel" if per_channel and x.shape[0] > 1 else "tensor"
        if mode == "tensor":
            s, zp = s[:1], zp[:1]
    else:
        s = np.atleast_1d(np.asarray(scale, np.float32))
        zp = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, np.int32))
        mode = "model"
    qmin, qmax = symbol_range(dtype)
    q = np.clip(np.round(x / _broadcast(s, x.ndim)) + _broadcast(zp, x.ndim), qmin, qmax).astype(DTYPES[dtype])
    return q, EncodedFeatures(dtype, tuple(int(d) for d in x.shape), s, zp, "none", b"", mode)


def _compress(raw: bytes, c: str, level: int) -> bytes:
    if c == "zstd":
        return zstandard.ZstdCompressor(level=level).compress(raw)
    if c == "lz4":
        return lz4.block.compress(raw, store_size=False, compression=max(level, 0))
    return raw


def encode(
    x: np.ndarray,
    dtype: str = "float32",
    codec: str = "none",
    level: int = 3,
    per_channel: bool = False,
    scale: np.ndarray | float | None = None,
    zero_point: np.ndarray | int | None = None,
    coder: EntropyCoder | None = None,
) -> EncodedFeatures:
    """Encode one frame's features as a key frame. Quantized dtypes compute scale/zero_point
    from x unless fixed ones are given (the learned bottleneck's); the entropy codec codes
    the quantized symbols with `coder` (the bundle's tables)."""
    if dtype not in DTYPES:
        raise CodecError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if codec not in CODECS:
        raise CodecError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    if codec == "entropy" and (coder is None or dtype not in QUANTIZED):
        raise CodecError("the entropy codec needs a bundle with entropy tables (trained with a rate term) and an "
                         "integer dtype; use codec zstd for other bundles")
    if dtype in QUANTIZED:
        tensor, enc = quantize(x, dtype, per_channel, scale, zero_point)
    else:
        tensor = _check_tensor(x).astype(DTYPES[dtype])
        enc = EncodedFeatures(dtype, tuple(int(d) for d in tensor.shape), np.zeros(0, np.float32),
                              np.zeros(0, np.int32), "none", b"")
    data = coder.encode(tensor) if codec == "entropy" else _compress(tensor.tobytes(), codec, level)
    return dataclasses.replace(enc, codec=codec, data=data)


def _check_header(enc: EncodedFeatures, max_bytes: int) -> np.dtype:
    if enc.dtype not in DTYPES:
        raise CodecError(f"unknown dtype {enc.dtype!r}")
    if enc.codec not in CODECS:
        raise CodecError(f"unknown codec {enc.codec!r}")
    if enc.quantization not in QUANTIZATIONS or enc.frame not in FRAMES:
        raise CodecError(f"unknown quantization {enc.quantization!r} or frame kind {enc.frame!r}")
    shape = enc.shape
    if not 1 <= len(shape) <= MAX_NDIM or any(d <= 0 for d in shape):
        raise CodecError(f"shape {list(shape)} must have 1..{MAX_NDIM} positive dimensions")
    dt = DTYPES[enc.dtype]
    # The limit is on what the receiver will hold: the float32 tensor, 4x an int8 payload.
    decoded = enc.raw_size // dt.itemsize * DTYPES["float32"].itemsize
    if decoded > max_bytes:
        raise CodecError(
            f"shape {list(shape)} decodes to {decoded} bytes of float32, over the {max_bytes}-byte limit "
            "(raise max_bytes / max_feature_bytes if this model's features really are that large)"
        )
    n = len(enc.scale)
    if enc.dtype in QUANTIZED:
        if enc.quantization == "none":
            raise CodecError(f"{enc.dtype} features need a quantization mode, got none")
        if enc.quantization == "model" and not n:
            raise CodecError("features use the bundle's quantization (QUANT_MODEL): decode them with the bundle "
                             "(ServerModel), which knows its scale")
        expected = shape[0] if enc.quantization == "channel" else 1
        if n != expected or len(enc.zero_point) != n:
            raise CodecError(
                f"{enc.dtype} with {enc.quantization} quantization needs {expected} scale/zero_point values, got "
                f"{n} scale and {len(enc.zero_point)} zero_point"
            )
        if not (np.isfinite(enc.scale).all() and (enc.scale > 0).all()):
            raise CodecError("quantization scale must be finite and > 0")
        qmin, qmax = symbol_range(enc.dtype)
        if ((enc.zero_point < qmin) | (enc.zero_point > qmax)).any():
            raise CodecError(f"zero_point outside the {enc.dtype} range [{qmin}, {qmax}]")
    elif n or len(enc.zero_point) or enc.quantization != "none":
        raise CodecError(f"{enc.dtype} features carry no scale/zero_point, got {n} ({enc.quantization})")
    if enc.codec == "entropy" and enc.quantization != "model":
        raise CodecError("the entropy codec codes the bundle's quantized symbols (QUANT_MODEL), got "
                         f"{enc.dtype} with {enc.quantization} quantization")
    if enc.frame != "key" and enc.codec != "entropy":
        raise CodecError(f"{enc.frame} frames exist only with the entropy codec")
    return dt


def _decompress(enc: EncodedFeatures) -> bytes | memoryview:
    data = enc.data
    if enc.codec == "none":
        if len(data) != enc.raw_size:
            raise CodecError(f"data has {len(data)} bytes, the shape needs {enc.raw_size} (truncated or oversized)")
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
        raise CodecError(f"{enc.codec} payload decompressed to {len(out)} bytes, the shape needs {enc.raw_size}")
    return out


def symbols(enc: EncodedFeatures, max_bytes: int = DEFAULT_MAX_BYTES,
            coder: EntropyCoder | None = None) -> np.ndarray:
    """The integer (or float) tensor a key frame carries, before dequantization: what
    temporal coding keeps as its reference. Checks the header first."""
    dt = _check_header(enc, max_bytes)
    if enc.frame != "key":
        raise CodecError("a delta frame decodes only against its stream's previous frame (mtl_split_core.temporal)")
    if enc.codec == "entropy":
        if coder is None:
            raise CodecError("entropy-coded features need the bundle's entropy tables to decode")
        q = coder.decode(enc.data, enc.shape)
        qmin, qmax = symbol_range(enc.dtype)
        if q.size and (q.min() < qmin or q.max() > qmax):
            raise CodecError(f"entropy-coded symbols outside the {enc.dtype} range; the tables do not match the dtype")
        return q.astype(dt)
    return np.frombuffer(_decompress(enc), dtype=dt).reshape(enc.shape)


def check_delta(enc: EncodedFeatures, max_bytes: int, reference_shape: tuple[int, ...]) -> None:
    """Header checks of a delta or skip frame against the reference it refers to."""
    _check_header(enc, max_bytes)
    if enc.frame == "key" or tuple(enc.shape) != tuple(reference_shape):
        raise CodecError(f"{enc.frame} frame of shape {list(enc.shape)} against a reference of shape "
                         f"{list(reference_shape)}; corrupt message")
    if enc.frame == "skip" and len(enc.data):
        raise CodecError(f"skip frame {enc.sequence} carries {len(enc.data)} bytes of data; corrupt message")


def dequantize(tensor: np.ndarray, enc: EncodedFeatures) -> np.ndarray:
    """An integer (or float) tensor of enc's dtype -> float32, checked for NaN/inf."""
    out = tensor.astype(np.float32)
    if enc.dtype in QUANTIZED:
        # In place: one float32 tensor, no temporaries of its size. A huge scale overflows
        # to inf, which the check below refuses.
        out -= _broadcast(np.asarray(enc.zero_point), tensor.ndim).astype(np.float32)
        with np.errstate(over="ignore"):
            out *= _broadcast(enc.scale, tensor.ndim)
    if not np.isfinite(out).all():
        raise CodecError("decoded features contain NaN or inf; corrupt payload or quantization scale")
    return out


def dequantize_many(tensors: Sequence[np.ndarray], encs: Sequence[EncodedFeatures]) -> tuple[np.ndarray, np.ndarray]:
    """Tensors of one shape (each of its payload's dtype, as symbols() gives them) -> float32
    (N, *shape) in one pass over the batch, and which of them are finite (a NaN/inf payload
    or an overflowing scale: the caller refuses those)."""
    n, shape = len(tensors), tuple(tensors[0].shape)
    out = np.empty((n, *shape), np.float32)
    scale, zero_point = np.ones((n, shape[0]), np.float32), np.zeros((n, shape[0]), np.float32)
    for i, (tensor, enc) in enumerate(zip(tensors, encs)):
        out[i] = tensor
        if enc.dtype in QUANTIZED:
            scale[i], zero_point[i] = enc.scale, enc.zero_point
    per_channel = (n, shape[0]) + (1,) * (len(shape) - 1)
    out -= zero_point.reshape(per_channel)
    with np.errstate(over="ignore", invalid="ignore"):
        out *= scale.reshape(per_channel)
    return out, np.isfinite(out.reshape(n, -1)).all(axis=1)


def decode(enc: EncodedFeatures, max_bytes: int = DEFAULT_MAX_BYTES, coder: EntropyCoder | None = None) -> np.ndarray:
    """Key-frame payload -> float32 tensor of enc.shape. Raises CodecError on any inconsistency."""
    return dequantize(symbols(enc, max_bytes, coder), enc)


# --- SharedFeatures message <-> EncodedFeatures -------------------------------------------

@functools.lru_cache(maxsize=64)
def _constants(msg_type: type, prefix: str) -> dict[str, int]:
    """{'float32': DTYPE_FLOAT32, ...} read from the generated message class (once per class:
    the server reads every frame's enumerations through it)."""
    return {name[len(prefix):].lower(): getattr(msg_type, name)
            for name in dir(msg_type) if name.startswith(prefix)}


def wire_code(msg_type: type, prefix: str, name: str) -> int:
    """The message constant of an enumeration value, e.g. ("CODEC_", "entropy") -> CODEC_ENTROPY."""
    return _constants(msg_type, prefix)[name]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(5):  # a uint32 needs at most 5 LEB128 bytes
        if pos + i >= len(buf):
            raise CodecError("data ends inside the tensor's shape; truncated message")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + i + 1
    raise CodecError("a dimension in the tensor's shape is longer than 5 bytes; corrupt message")


def _sends_params(quantization: str) -> bool:
    return quantization in ("tensor", "channel")


def _layout(enc: EncodedFeatures) -> bytes:
    """The data field's prefix: shape, source frame size, then scales and zero points when the
    frame has its own. A skip frame carries only the source frame size (the receiver's bundle
    knows the shape; the size puts its repeated dense results on the camera's grid)."""
    if enc.frame == "skip":
        return b"".join(_varint(int(d)) for d in enc.source_size)
    out = _varint(len(enc.shape)) + b"".join(_varint(int(d)) for d in (*enc.shape, *enc.source_size))
    if _sends_params(enc.quantization):
        out += np.ascontiguousarray(enc.scale, "<f4").tobytes() + np.ascontiguousarray(enc.zero_point, "<i4").tobytes()
    return out


def to_message(enc: EncodedFeatures, msg: Any) -> Any:
    """Fill a SharedFeatures instance's payload fields (header, fingerprint, timing are the
    caller's). Returns msg."""
    msg_type = type(msg)
    msg.schema_version = msg_type.SCHEMA_VERSION
    msg.dtype = _constants(msg_type, "DTYPE_")[enc.dtype]
    msg.codec = _constants(msg_type, "CODEC_")[enc.codec]
    msg.quantization = _constants(msg_type, "QUANT_")[enc.quantization]
    msg.frame = _constants(msg_type, "FRAME_")[enc.frame]
    msg.sequence = enc.sequence % SEQUENCE_MOD
    msg.data = _layout(enc) + bytes(enc.data)
    return msg


def check_version(msg: Any) -> None:
    """SchemaError for a message of another wire-format version (checked before anything else)."""
    msg_type = type(msg)
    if msg.schema_version != msg_type.SCHEMA_VERSION:
        raise SchemaError(
            f"SharedFeatures schema_version {msg.schema_version}, this receiver reads {msg_type.SCHEMA_VERSION}: "
            "edge and server run different mtl_split releases; update both to the same version"
        )


@functools.lru_cache(maxsize=64)
def _names(msg_type: type, prefix: str) -> dict[int, str]:
    return {v: k for k, v in _constants(msg_type, prefix).items()}


def _enum(msg: Any, prefix: str, value: int, what: str) -> str:
    names = _names(type(msg), prefix)
    if value not in names:
        raise CodecError(f"unknown {what} code {value} (known: {sorted(names)})")
    return names[value]


def from_message(msg: Any) -> EncodedFeatures:
    """Read a received SharedFeatures into an EncodedFeatures (no copy of the tensor data);
    check schema version, enumerations and the data field's layout. Pass it to decode()."""
    check_version(msg)
    dtype = _enum(msg, "DTYPE_", msg.dtype, "dtype")
    quantization = _enum(msg, "QUANT_", msg.quantization, "quantization")
    enc = EncodedFeatures(dtype=dtype, shape=(), scale=np.zeros(0, np.float32), zero_point=np.zeros(0, np.int32),
                          codec=_enum(msg, "CODEC_", msg.codec, "codec"), data=b"", quantization=quantization,
                          frame=_enum(msg, "FRAME_", msg.frame, "frame"), sequence=int(msg.sequence))
    buf = memoryview(msg.data).cast("B") if len(msg.data) else memoryview(b"")
    if enc.frame == "skip":  # no shape: the bundle's (ServerModel.decode); nothing after the size (check_delta)
        ndim, pos = 0, 0
    else:
        ndim, pos = _read_varint(buf, 0)
        if not 1 <= ndim <= MAX_NDIM:
            raise CodecError(f"shape has {ndim} dimensions, must have 1..{MAX_NDIM}")
    shape = []
    for _ in range(ndim + 2):  # the dimensions, then the source frame's width and height
        d, pos = _read_varint(buf, pos)
        shape.append(d)
    shape, source_size = shape[:ndim], (shape[ndim], shape[ndim + 1])
    if (source_size[0] == 0) != (source_size[1] == 0):
        raise CodecError(f"source frame size {source_size[0]}x{source_size[1]}: both or neither must be 0; "
                         "corrupt message")
    if enc.frame == "skip":
        return dataclasses.replace(enc, data=buf[pos:], source_size=source_size)
    scale, zero_point = enc.scale, enc.zero_point
    if _sends_params(quantization):
        n = shape[0] if quantization == "channel" else 1
        if len(buf) - pos < 8 * n:
            raise CodecError(f"data ends inside the {n} quantization parameter pairs; truncated message")
        scale = np.frombuffer(buf, "<f4", n, pos).astype(np.float32)
        zero_point = np.frombuffer(buf, "<i4", n, pos + 4 * n).astype(np.int64)
        pos += 8 * n
    return dataclasses.replace(enc, shape=tuple(shape), scale=scale, zero_point=zero_point, data=buf[pos:],
                               source_size=source_size)
