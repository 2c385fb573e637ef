"""The cases both processes of test_codec_ros.py build identically: (dtype, codec,
per_channel) tensors, and an entropy-coded clip with temporal coding whose tables are made
from integers only (what a bundle ships)."""
import itertools

import numpy as np

from mtl_split_core import codec
from mtl_split_core.entropy import TOTAL, EntropyCoder, SymbolTables
from mtl_split_core.temporal import TemporalEncoder

CASES = [(d, c, pc) for d, c in itertools.product(codec.DTYPES, codec.BYTE_CODECS)
         for pc in ((False, True) if d in codec.QUANTIZED else (False,))]
CLIP_FRAMES = 12
CLIP_KEYFRAME_INTERVAL = 5
CLIP_SCALE = 1 / 127


def case_tensor(i: int) -> np.ndarray:
    """Deterministic, ReLU-like (sparse, non-negative) features of a different shape per case."""
    rng = np.random.default_rng(i)
    x = rng.standard_normal((16 + i, 7, 7)).astype(np.float32)
    return np.maximum(x, 0) * rng.uniform(0.1, 10)


def _tables(offset: int, channels: int, power: int) -> SymbolTables:
    """Peaked integer tables built with integer arithmetic only (no float anywhere)."""
    n = 1 - 2 * offset
    raw = [[(n - abs(2 * k - n + 1) + c) ** power for k in range(n)] for c in range(channels)]
    free = TOTAL - n
    weights = [[v * free // sum(row) for v in row] for row in raw]
    for row in weights:
        row[n // 2] += free - sum(row)
    return SymbolTables(offset, np.array(weights, np.int64))


def clip_coders() -> tuple[EntropyCoder, EntropyCoder]:
    return EntropyCoder(_tables(-127, 4, 6)), EntropyCoder(_tables(-254, 4, 40))


def clip_features() -> list[np.ndarray]:
    """A slowly drifting 4x5x5 bottleneck in [-1, 1], on the int8 grid."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.3, 0.3, (4, 5, 5))
    out = []
    for _ in range(CLIP_FRAMES):
        x = np.clip(x + rng.normal(0, 0.01, x.shape) * (rng.random(x.shape) < 0.2), -1, 1)
        out.append(x.astype(np.float32))
    return out


def clip_encoded() -> list[codec.EncodedFeatures]:
    enc = TemporalEncoder(*clip_coders(), keyframe_interval=CLIP_KEYFRAME_INTERVAL)
    out = []
    for i, x in enumerate(clip_features()):
        q, template = codec.quantize(x, "int8", scale=CLIP_SCALE, zero_point=0)
        out.append(enc.encode("clip", q, template, now=float(i)))
    return out
