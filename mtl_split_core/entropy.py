"""Entropy coding of integer tensors with per-channel integer probability tables, torch-free.

A bundle trained with a rate term (mtl_split_training.entropy_model) ships, per channel of its
bottleneck, the learned distribution of the quantized symbols as an integer table: weights
w >= 0 over the symbols offset..offset+n-1 that sum to 2**PRECISION - n. Symbol i is coded
with probability (w_i + 1) / 2**PRECISION, so every symbol stays codable.

The coder is constriction's ANS coder with its Categorical model (perfect=False). That model
places symbol i at floor(cumsum(p)[:i] * scale) + i with scale = (2**PRECISION - n) / sum(p);
given exactly our weights as float64, scale is exactly 1.0 and every partial sum an integer
below 2**53, so the model it builds *is* the integer table, bit for bit, on any machine. The
golden-bytes test in test_entropy pins that (and would catch a constriction change).

Channel is axis 0; any further axes (H, W of a dense split, or none) are coded in C order, so
the coder is generic over tensor shapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CodecError

PRECISION = 24
TOTAL = 1 << PRECISION
_WORD = 4  # constriction emits 32-bit words


def quantize_pmf(pmf: np.ndarray) -> np.ndarray:
    """(C, n) probabilities -> (C, n) int64 weights, each row summing to TOTAL - n.

    Deterministic for a given float input; run once at export, and only the integers are
    stored, so no machine ever rebuilds a table from floats."""
    p = np.asarray(pmf, np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or not np.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"pmf must be a (channels, >= 2 symbols) array of finite probabilities >= 0, got {p.shape}")
    p = p / np.maximum(p.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    free = TOTAL - p.shape[1]
    scaled = p * free
    w = np.floor(scaled).astype(np.int64)
    deficit = free - w.sum(axis=1)
    order = np.argsort(-(scaled - w), axis=1, kind="stable")  # largest remainders first
    for row, d in enumerate(deficit):
        w[row, order[row, :d]] += 1
    return w


@dataclass(frozen=True)
class SymbolTables:
    """Per-channel integer tables over the symbols offset .. offset + n - 1."""

    offset: int
    weights: np.ndarray  # (channels, n) int64

    def __post_init__(self) -> None:
        w = self.weights
        if w.ndim != 2 or not 2 <= w.shape[1] < TOTAL - 1 or w.shape[0] < 1:
            raise CodecError(f"entropy table must be (channels, 2..{TOTAL - 2} symbols), got {w.shape}")
        if w.dtype.kind not in "iu" or (w < 0).any() or (w.sum(axis=1) != TOTAL - w.shape[1]).any():
            raise CodecError(f"every entropy table row must be integers >= 0 summing to 2^{PRECISION} - symbols; "
                             "re-export the bundle")

    @property
    def channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def symbols(self) -> tuple[int, int]:
        """Smallest and largest codable symbol."""
        return self.offset, self.offset + int(self.weights.shape[1]) - 1

    def bits(self, symbols: np.ndarray) -> float:
        """Ideal code length of symbols (C, ...) under these tables, in bits."""
        idx = np.asarray(symbols, np.int64).reshape(self.channels, -1) - self.offset
        prob = (np.take_along_axis(self.weights, idx, axis=1) + 1) / TOTAL
        return float(-np.log2(prob).sum())


class EntropyCoder:
    """Symbols (C, ...) <-> bytes with one SymbolTables. Building it builds the models once."""

    def __init__(self, tables: SymbolTables) -> None:
        import constriction

        self.tables = tables
        self._models = [constriction.stream.model.Categorical(row.astype(np.float64), perfect=False)
                        for row in tables.weights]
        self._ans = constriction.stream.stack.AnsCoder

    def encode(self, symbols: np.ndarray) -> bytes:
        """Integer symbols, axis 0 = channel, all within the tables' range -> bytes."""
        t = self.tables
        x = np.asarray(symbols)
        if x.ndim < 1 or x.shape[0] != t.channels:
            raise CodecError(f"entropy coder has {t.channels} channel tables, got a tensor of shape {x.shape}")
        idx = x.reshape(t.channels, -1).astype(np.int64) - t.offset
        lo, hi = t.symbols
        if idx.size and (idx.min() < 0 or idx.max() >= t.weights.shape[1]):
            raise CodecError(f"symbols outside the entropy tables' range [{lo}, {hi}]")
        coder = self._ans()
        idx32 = idx.astype(np.int32)
        for c in range(t.channels - 1, -1, -1):  # a stack: the first channel goes on top
            coder.encode_reverse(idx32[c], self._models[c])
        data = coder.get_compressed().astype("<u4").tobytes()
        # The last word's high zero bytes carry nothing: drop them (decode pads them back).
        end = len(data)
        while end > len(data) - (_WORD - 1) and end > 0 and data[end - 1] == 0:
            end -= 1
        return data[:end]

    def decode(self, data: bytes | memoryview, shape: tuple[int, ...]) -> np.ndarray:
        """bytes -> int32 symbols of shape (channels, ...). CodecError if the payload does not
        decode to exactly that many symbols (ANS ends empty exactly when it does)."""
        t = self.tables
        if not shape or shape[0] != t.channels:
            raise CodecError(f"entropy tables have {t.channels} channels, the message's shape is {list(shape)}")
        raw = bytes(data)
        raw += b"\0" * (-len(raw) % _WORD)
        count = int(np.prod(shape[1:], dtype=np.int64))
        out = np.empty((t.channels, count), np.int32)
        try:
            coder = self._ans(np.frombuffer(raw, "<u4").astype(np.uint32))
            for c in range(t.channels):
                out[c] = coder.decode(self._models[c], count)
            complete = coder.is_empty()
        except (ValueError, AssertionError, RuntimeError) as e:
            raise CodecError(f"entropy-coded payload does not decode ({e}); corrupt or truncated data") from e
        if not complete:
            raise CodecError("entropy-coded payload has bits left after the last symbol; corrupt data, or edge and "
                             "server use different tables")
        out += t.offset
        return out.reshape(shape)


# --- the tables a bundle ships -----------------------------------------------------------------

INTRA = "intra"  # a frame coded alone
RESIDUAL = "residual"  # a frame coded as the difference to the previous frame of its stream


def save_tables(path: Path, tables: dict[str, SymbolTables]) -> None:
    """Integer arrays in an .npz (no pickle): <name>_weights and <name>_offset per table."""
    arrays: dict[str, np.ndarray] = {}
    for name, t in tables.items():
        arrays[f"{name}_weights"] = np.ascontiguousarray(t.weights, np.int64)
        arrays[f"{name}_offset"] = np.array(t.offset, np.int64)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_tables(path: Path) -> dict[str, SymbolTables]:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = sorted({k.rsplit("_", 1)[0] for k in z.files})
            return {n: SymbolTables(int(z[f"{n}_offset"]), np.asarray(z[f"{n}_weights"], np.int64)) for n in names}
    except (OSError, ValueError, KeyError) as e:
        raise CodecError(f"{path}: not a valid entropy table file ({e}); re-export the bundle") from e
