"""The rate term: a learned factorized prior over the bottleneck's int8 symbols.

Each channel gets its own density over the symbol axis, modelled as in Ballé et al. 2018
(the "factorized prior" behind CompressAI's EntropyBottleneck): a small monotone network
gives the logits of the cumulative distribution, and a symbol's probability is
CDF(s + 1/2) - CDF(s - 1/2). During training the bottleneck adds uniform noise of one
quantization step, so the rate is differentiable and the encoder learns features that are
cheap to code; `train.rate_lambda` weighs bits per frame against the task losses.

CompressAI itself is not used: its wheel pins numpy < 2 and pulls torch-geometric and
pandas, which conflict with this project's pinned stack. This module is the same model in
~80 lines of torch.

At export the prior becomes integer tables (mtl_split_core.entropy.quantize_pmf), once, so
edge and server never evaluate floats to code: the bundle's tables are the code. The intra
tables are the symbols' histogram on held-out frames, counted after training, with a little
of the learned prior mixed in: the prior is fitted to noise-relaxed symbols, and on the
rounded ones it costs about a fifth more bytes (dense.yaml at 16 epochs: 198 against 154 B
per frame on the test scenes).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mtl_split_core.entropy import SymbolTables, quantize_pmf

from .bottleneck import INT8_SCALE

LEVELS = round(1 / INT8_SCALE)  # symbols are -LEVELS .. LEVELS (int8 grid of the bottleneck)
RESIDUAL_LEVELS = 2 * LEVELS  # a difference of two symbols
RESIDUAL_FLOOR = 1e-3  # probability mass spread over all differences: unseen ones stay codable (~19 bits)
PRIOR_WEIGHT = 1e-2  # share of the learned prior in the intra tables: symbols unseen in the histogram stay cheap


def symbols(code: torch.Tensor) -> torch.Tensor:
    """Bottleneck output (grid of INT8_SCALE, noisy while training) -> symbol units."""
    return code / INT8_SCALE


class FactorizedPrior(nn.Module):
    """Per-channel density of the symbols; `bits(s)` is the rate term, `tables()` the export."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _cdf_logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (channels, 1, N) symbol values -> logits of each channel's CDF at x."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, s: torch.Tensor) -> torch.Tensor:
        """Probability of each symbol value of s (N, C, ...), same shape."""
        n, c = s.shape[:2]
        v = s.transpose(0, 1).reshape(c, 1, -1)
        lower, upper = self._cdf_logits(v - 0.5), self._cdf_logits(v + 0.5)
        # Subtract in the tail where the sigmoid is not saturated (numerically stable).
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.reshape(c, n, *s.shape[2:]).transpose(0, 1).clamp_min(1e-9)

    def bits(self, s: torch.Tensor) -> torch.Tensor:
        """Mean bits per frame of the symbols s (N, C, ...)."""
        return -torch.log2(self.likelihood(s)).sum() / s.shape[0]

    @torch.no_grad()
    def pmf(self) -> np.ndarray:
        """(C, 2 * LEVELS + 1) probabilities of the symbols -LEVELS..LEVELS; the tails beyond
        go to the extreme symbols (the bottleneck's tanh never leaves that range)."""
        v = torch.arange(-LEVELS, LEVELS + 1, dtype=torch.float32).expand(self.channels, 1, -1).contiguous()
        cdf = torch.sigmoid(self._cdf_logits(torch.cat([v - 0.5, v[..., -1:] + 0.5], dim=-1)))[:, 0].double()
        p = torch.diff(cdf, dim=-1).clamp_min(0)
        p[:, 0] += cdf[:, 0]
        p[:, -1] += 1 - cdf[:, -1]
        return p.numpy()


def _empirical(counts: np.ndarray) -> np.ndarray:
    """Per-channel histogram -> per-channel frequencies (an empty row stays zero)."""
    counts = np.asarray(counts, np.float64)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def intra_tables(prior: FactorizedPrior, counts: np.ndarray) -> SymbolTables:
    """counts: per-channel histogram of the symbols -LEVELS..LEVELS on held-out frames; all
    zero (a run saved before they were counted) gives the learned prior alone."""
    pmf = prior.pmf()
    if np.asarray(counts).sum() > 0:
        pmf = (1 - PRIOR_WEIGHT) * _empirical(counts) + PRIOR_WEIGHT * pmf
    return SymbolTables(-LEVELS, quantize_pmf(pmf))


def residual_tables(counts: np.ndarray) -> SymbolTables:
    """Per-channel counts of q_t - q_(t-1) over -RESIDUAL_LEVELS..RESIDUAL_LEVELS -> tables."""
    empirical = _empirical(counts)
    return SymbolTables(-RESIDUAL_LEVELS, quantize_pmf((1 - RESIDUAL_FLOOR) * empirical
                                                       + RESIDUAL_FLOOR / empirical.shape[1]))


def _shifted(images: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """The same frames a moment later, as a drifting camera sees them: shifted by up to
    max_shift pixels (border replicated)."""
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=generator))
    h, w = images.shape[-2:]
    m = max_shift
    padded = F.pad(images, (m, m, m, m), mode="replicate")
    return padded[..., m + dy: m + dy + h, m + dx: m + dx + w]


@torch.no_grad()
def coding_counts(edge: nn.Module, batches: Iterable[torch.Tensor], channels: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Histograms per channel of the symbols of frames (what the intra tables are built from)
    and of the symbol differences between frames and their slightly moved versions (temporal
    coding's residual tables)."""
    symbol_counts = np.zeros((channels, 2 * LEVELS + 1), np.float64)
    residual_counts = np.zeros((channels, 2 * RESIDUAL_LEVELS + 1), np.float64)
    generator = torch.Generator().manual_seed(seed)
    for images in batches:
        a = torch.round(symbols(edge(images))).long().clamp(-LEVELS, LEVELS)
        b = torch.round(symbols(edge(_shifted(images, generator)))).long().clamp(-LEVELS, LEVELS)
        s = (a + LEVELS).transpose(0, 1).reshape(channels, -1)
        d = (b - a).transpose(0, 1).reshape(channels, -1) + RESIDUAL_LEVELS
        for c in range(channels):
            symbol_counts[c] += np.bincount(s[c].numpy(), minlength=symbol_counts.shape[1])
            residual_counts[c] += np.bincount(d[c].numpy(), minlength=residual_counts.shape[1])
    return symbol_counts, residual_counts
