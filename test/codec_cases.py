"""The (dtype, codec, per_channel) cases and their tensors, shared by both processes of
test_codec_ros.py."""
import itertools

import numpy as np

from mtl_split_core import codec

CASES = [(d, c, pc) for d, c in itertools.product(codec.DTYPES, codec.CODECS)
         for pc in ((False, True) if d in codec.QUANTIZED else (False,))]


def case_tensor(i: int) -> np.ndarray:
    """Deterministic, ReLU-like (sparse, non-negative) features of a different shape per case."""
    rng = np.random.default_rng(i)
    x = rng.standard_normal((16 + i, 7, 7)).astype(np.float32)
    return np.maximum(x, 0) * rng.uniform(0.1, 10)
