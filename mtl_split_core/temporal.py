"""Temporal coding per camera stream: keyframes, and residuals against the previous frame.

A robot camera's consecutive frames have nearly the same bottleneck symbols, so after a
keyframe the edge codes r_t = q_t - ref_{t-1} with the bundle's residual tables (peaked at
0), where ref is the stream's previous frame as the server reconstructed it.

Lossless (dead_zone 0), ref is q itself and the server reconstructs exactly the edge's q_t.
With a dead zone d, residual symbols of magnitude <= d are sent as 0: small flicker of the
features costs nothing. The loop is closed - both sides add the sent residual to the same
reference - so nothing drifts: every reconstructed symbol stays within d of the edge's
current one. A frame whose sent residual is all zeros is a skip frame: no tensor at all,
and the server repeats the previous frame's result for it, marked as repeated.

Edge (TemporalEncoder): a keyframe starts every stream, comes at least every
`keyframe_interval` frames, and whenever the residual would not be smaller than the frame
coded alone - which is what a scene change (or a cut, or a camera swap) looks like.

Server (TemporalDecoder): a delta or skip frame decodes only if it follows the stream's
previous frame (sequence + 1, same publisher). After a lost, reordered or expired frame it
raises ResyncPending for every one until the next keyframe, so it never produces a result
from a wrong reference; the node counts those frames as dropped.

Both sides keep per-stream state in a StreamTable bounded in size (least recently used
streams go first) and in age (a stream silent longer than max_age_s is forgotten): fleets
come and go.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from . import codec
from .bounded import BoundedTable
from .entropy import EntropyCoder
from .errors import CodecError
from .options import DEFAULT_MAX_BYTES

DEFAULT_KEYFRAME_INTERVAL = 30  # like a video codec's GOP at 30 Hz: a lost frame costs <= 1 s
DEFAULT_MAX_STREAMS = 256
DEFAULT_MAX_AGE_S = 10.0


class ResyncPending(CodecError):
    """A delta frame whose reference the receiver does not hold: dropped until the next keyframe."""


@dataclass
class _Stream:
    reference: np.ndarray  # the symbols of the stream's last frame, as both sides hold them
    sequence: int
    since_key: int


class StreamTable(BoundedTable[Hashable, _Stream]):
    """stream key -> state, bounded in count (least recently used first) and age."""

    def __init__(self, max_streams: int = DEFAULT_MAX_STREAMS, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        super().__init__(max_streams, max_age_s)

    def drop(self, key: Hashable) -> None:
        self.pop(key)


def _residual(q: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return q.astype(np.int32) - reference.astype(np.int32)


class TemporalEncoder:
    """Edge side: quantized symbols of one frame of a stream -> a key, delta or skip frame."""

    def __init__(self, intra: EntropyCoder, residual: EntropyCoder,
                 keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL, streams: StreamTable | None = None,
                 dead_zone: int = 0) -> None:
        if keyframe_interval < 1:
            raise ValueError(f"keyframe_interval must be >= 1 (1 = every frame a keyframe), got {keyframe_interval}")
        if dead_zone < 0:
            raise ValueError(f"dead_zone must be >= 0 symbols (0 = lossless), got {dead_zone}")
        self.intra, self.residual, self.keyframe_interval = intra, residual, keyframe_interval
        self.dead_zone = dead_zone
        self.streams = streams if streams is not None else StreamTable()

    def encode(self, stream: Hashable, q: np.ndarray, template: codec.EncodedFeatures,
               now: float | None = None) -> codec.EncodedFeatures:
        """template: the frame's EncodedFeatures from codec.quantize (dtype, shape, quantization)."""
        now = time.monotonic() if now is None else now
        state = self.streams.get(stream, now)
        sequence = (state.sequence + 1) % codec.SEQUENCE_MOD if state else 0
        frame, data, reference = "key", self.intra.encode(q), q
        if state is not None and state.since_key + 1 < self.keyframe_interval and state.reference.shape == q.shape:
            r = _residual(q, state.reference)
            if self.dead_zone:
                r[np.abs(r) <= self.dead_zone] = 0
            if not r.any():
                frame, data, reference = "skip", b"", state.reference
            else:
                delta = self.residual.encode(r)
                if len(delta) < len(data):
                    frame, data = "delta", delta
                    reference = (state.reference.astype(np.int32) + r).astype(q.dtype)
        since_key = state.since_key + 1 if frame != "key" else 0
        self.streams.put(stream, _Stream(reference.copy(), sequence, since_key), now)
        return dataclasses.replace(template, codec="entropy", data=data, frame=frame, sequence=sequence)


class TemporalDecoder:
    """Server side: key, delta and skip frames of many streams -> quantized symbols."""

    def __init__(self, intra: EntropyCoder, residual: EntropyCoder, streams: StreamTable | None = None) -> None:
        self.intra, self.residual = intra, residual
        self.streams = streams if streams is not None else StreamTable()
        self.resync_dropped = 0  # delta frames dropped for want of their reference

    def symbols(self, stream: Hashable, enc: codec.EncodedFeatures, max_bytes: int = DEFAULT_MAX_BYTES,
                now: float | None = None) -> np.ndarray:
        now = time.monotonic() if now is None else now
        if enc.frame == "key":
            self.streams.drop(stream)  # a bad keyframe must not leave the old chain usable
            q = codec.symbols(enc, max_bytes, self.intra)
            self.streams.put(stream, _Stream(q, enc.sequence, 0), now)
            return q
        state = self.streams.get(stream, now)
        if state is None or enc.sequence != (state.sequence + 1) % codec.SEQUENCE_MOD:
            self.streams.drop(stream)
            self.resync_dropped += 1
            why = "no keyframe yet, or the stream expired" if state is None else \
                f"the previous frame was {state.sequence}: frames lost or reordered"
            raise ResyncPending(f"{enc.frame} frame {enc.sequence} has no reference ({why}); waiting for the next "
                                "keyframe")
        self.streams.drop(stream)
        codec.check_delta(enc, max_bytes, state.reference.shape)
        if enc.frame == "skip":
            self.streams.put(stream, _Stream(state.reference, enc.sequence, state.since_key + 1), now)
            return state.reference
        q = state.reference.astype(np.int32) + self.residual.decode(enc.data, enc.shape)
        lo, hi = codec.symbol_range(enc.dtype)
        if q.size and (q.min() < lo or q.max() > hi):
            raise CodecError(f"delta frame {enc.sequence} leaves the {enc.dtype} range; corrupt data")
        q = q.astype(state.reference.dtype)
        self.streams.put(stream, _Stream(q, enc.sequence, state.since_key + 1), now)
        return q
