"""The bundle's two halves as plain in-process objects, ROS-free.

EdgeModel: camera frames -> backbone features -> encoded payloads.
ServerModel: payloads (or SharedFeatures messages) -> decoded features -> task predictions.

The edge and server nodes, offline evaluation and the benchmarks all call these, so a
result computed live over ROS and one computed offline come from one code path.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import codec, entropy, temporal
from .backends import Backend, open_backend
from .bundle import BACKBONE_FILE, FEATURES_NAME, HEADS_FILE, IMAGE_INPUT, InputSpec, Manifest, load_manifest
from .dense import DensePrediction, postprocess, to_source
from .errors import BundleError, CodecError, MtlSplitError
from .image_header import DEFAULT_MAX_PIXELS
from .options import DEFAULT_MAX_BYTES
from .preprocess import Decoded, camera_size, geometry, preprocess


@dataclass(frozen=True)
class Prediction:
    task: str
    class_id: int
    class_name: str
    score: float  # softmax probability of class_id
    scores: np.ndarray  # float32 softmax probabilities of all classes


@dataclass(frozen=True)
class DenseResult:
    """One dense task's result for one frame, in the model input's pixels: a uint8 class-id
    mask, a float32 depth image in metres, or Boxes."""

    task: str
    kind: str
    value: DensePrediction

    def in_source(self, spec: InputSpec, width: int, height: int, scale: float = 1.0) -> DensePrediction:
        """The result on the width x height camera frame the input was made from (undoing the
        manifest's resize / center_crop / letterbox), or on that frame's grid scaled by `scale`
        (dense.scaled_size). A 0x0 frame (features not made from a camera frame) keeps the
        model input's grid."""
        if not width or not height:
            return self.value
        return to_source(self.value, geometry(width, height, spec), (width, height), scale)


Result = Prediction | DenseResult


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, max(size, 1))]


def entropy_coders(bundle_dir: Path, manifest: Manifest) -> tuple[entropy.EntropyCoder, entropy.EntropyCoder] | None:
    """The bundle's (intra, residual) coders, or None for a bundle without entropy tables."""
    name = manifest.features.entropy
    if not name:
        return None
    tables = entropy.load_tables(Path(bundle_dir) / name)
    channels = manifest.features.shape[0]
    for key in (entropy.INTRA, entropy.RESIDUAL):
        if key not in tables or tables[key].channels != channels:
            raise BundleError(f"{name} needs a {key!r} table of {channels} channels; re-export the bundle")
    return entropy.EntropyCoder(tables[entropy.INTRA]), entropy.EntropyCoder(tables[entropy.RESIDUAL])


class EdgeModel:
    """The edge half. With the entropy codec, frames of one stream (camera) are coded against
    each other: keyframe_interval 1 codes every frame alone.

    bundle_dir: a bundle from `mtl-split export`.
    backend, precision: which inference backend (options.BACKENDS) and, for TensorRT, which
        engine precision (options.PRECISIONS or "auto") to open backbone.onnx with.
    threads: ONNX Runtime intra-op threads (0: its default).
    max_batch: most frames per backbone run (a larger call is run in chunks).
    dtype, codec_name, level, per_channel: the wire encoding (codec.DTYPES, codec.CODECS,
        compression level, per-channel quantization). None: the bundle's FeatureSpec, including
        a learned bottleneck's fixed quantization.
    keyframe_interval: codec entropy: at most this many frames per stream from one keyframe to
        the next (temporal.TemporalEncoder).
    dead_zone: codec entropy: residual symbols of magnitude <= dead_zone are sent as 0 (lossy
        temporal coding; unchanged frames become skip frames). 0 = lossless.
    """

    def __init__(self, bundle_dir: str | Path, *, backend: str = "auto", precision: str = "auto",
                 threads: int = 0, max_batch: int = 1, dtype: str | None = None, codec_name: str | None = None,
                 level: int = 3, per_channel: bool = False,
                 keyframe_interval: int = temporal.DEFAULT_KEYFRAME_INTERVAL, dead_zone: int = 0) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.manifest: Manifest = load_manifest(self.bundle_dir)
        self.max_batch = max_batch
        spec = self.manifest.features
        self.dtype = dtype or spec.dtype
        self.codec = codec_name or spec.codec
        self.level, self.per_channel = level, per_channel
        # The bottleneck's learned scale belongs to the dtype it was trained for.
        fixed = self.dtype == spec.dtype and spec.scale is not None
        self._scale = spec.scale if fixed else None
        self._zero_point = spec.zero_point if fixed else None
        self._temporal: temporal.TemporalEncoder | None = None
        if self.codec == "entropy":
            coders = entropy_coders(self.bundle_dir, self.manifest)
            if coders is None or not fixed:
                raise BundleError(f"codec entropy needs a bundle trained with a rate term (train.rate_lambda) and its "
                                  f"dtype {spec.dtype}; this bundle has {'no entropy tables' if coders is None else 'them'}"
                                  f", asked dtype {self.dtype}: use codec zstd")
            self._temporal = temporal.TemporalEncoder(*coders, keyframe_interval=keyframe_interval,
                                                      streams=temporal.StreamTable(), dead_zone=dead_zone)
        self.backend: Backend
        self.backend, self.backend_reason = open_backend(self.bundle_dir, self.manifest, BACKBONE_FILE, backend,
                                                         precision, max_batch, threads)
        self.encode(np.zeros(spec.shape, np.float32))  # invalid dtype/codec/level fail here, not per frame
        self.reset_streams()

    def reset_streams(self) -> None:
        """Forget every stream's reference: the next frame of each is a keyframe."""
        if self._temporal is not None:
            self._temporal.streams.clear()

    def features(self, frames: Sequence[np.ndarray | Decoded]) -> np.ndarray:
        """HxWx3 uint8 frames in the manifest's channel order (or Decoded camera frames) ->
        float32 (N, *feature shape)."""
        x = preprocess(frames, self.manifest.input)
        out = np.concatenate([self.backend.run({IMAGE_INPUT: x[s]}, [FEATURES_NAME])[0]
                              for s in _chunks(len(x), self.max_batch)])
        if out.shape[1:] != tuple(self.manifest.features.shape):
            raise BundleError(f"backbone returned features of shape {out.shape[1:]}, the manifest says "
                              f"{tuple(self.manifest.features.shape)}; re-export the bundle")
        return out

    def encode(self, feature: np.ndarray, stream: Hashable = "") -> codec.EncodedFeatures:
        """One frame's features -> payload; `stream` names its camera for temporal coding."""
        if self._temporal is not None:
            q, template = codec.quantize(feature, self.dtype, scale=self._scale, zero_point=self._zero_point)
            return self._temporal.encode(stream, q, template)
        return codec.encode(feature, self.dtype, self.codec, self.level, self.per_channel,
                            self._scale, self._zero_point)

    def __call__(self, frames: Sequence[np.ndarray | Decoded], streams: Sequence[Hashable] | None = None
                 ) -> list[codec.EncodedFeatures]:
        """Frames -> payloads, each carrying its frame's size (where the server maps dense
        results back to)."""
        keys = streams if streams is not None else [""] * len(frames)
        return [dataclasses.replace(self.encode(x, k), source_size=camera_size(f))
                for x, k, f in zip(self.features(frames), keys, frames)]


class ServerModel:
    """The server half: checks and decodes payloads, runs only the heads asked for.

    bundle_dir, backend, precision, threads: as for EdgeModel (heads.onnx is opened).
    max_batch: most frames per heads run (a larger call is run in chunks).
    max_bytes: a payload whose decoded tensor would be larger is refused before allocating.
    streams: the temporal streams' state (bounded; default: temporal.StreamTable()).
    """

    def __init__(self, bundle_dir: str | Path, *, backend: str = "auto", precision: str = "auto",
                 threads: int = 0, max_batch: int = 8, max_bytes: int = DEFAULT_MAX_BYTES,
                 streams: temporal.StreamTable | None = None) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.manifest: Manifest = load_manifest(self.bundle_dir)
        self.fingerprint = codec.fingerprint(self.manifest.model_id)
        self.max_batch, self.max_bytes = max_batch, max_bytes
        coders = entropy_coders(self.bundle_dir, self.manifest)
        self.temporal = temporal.TemporalDecoder(*coders, streams=streams) if coders else None
        self.backend: Backend
        self.backend, self.backend_reason = open_backend(self.bundle_dir, self.manifest, HEADS_FILE, backend,
                                                         precision, max_batch, threads, per_output=True)

    def decode(self, enc: codec.EncodedFeatures, stream: Hashable = None) -> np.ndarray:
        """Payload -> float32 features of this bundle's shape (CodecError otherwise). Entropy-
        coded frames of one `stream` (camera) decode in order; a delta frame without its
        reference raises temporal.ResyncPending."""
        enc = self._for_this_bundle(enc)
        if enc.codec != "entropy":
            return codec.decode(enc, self.max_bytes)
        return codec.dequantize(self._entropy_symbols(enc, stream), enc)

    def _for_this_bundle(self, enc: codec.EncodedFeatures) -> codec.EncodedFeatures:
        """enc checked against this bundle's feature shape, with the bundle's quantization filled in."""
        spec = self.manifest.features
        if enc.frame == "skip":  # the previous frame again: a skip message carries no shape
            enc = dataclasses.replace(enc, shape=tuple(spec.shape))
        if tuple(enc.shape) != tuple(spec.shape):
            raise CodecError(f"features of shape {list(enc.shape)}, this bundle's heads take "
                             f"{list(spec.shape)}; edge and server run different models")
        if enc.quantization == "model":
            if spec.scale is None:
                raise CodecError("features quantized on the bundle's grid, but this bundle has no fixed quantization")
            enc = dataclasses.replace(enc, scale=np.array([spec.scale], np.float32),
                                      zero_point=np.array([spec.zero_point or 0], np.int32))
        return enc

    def _entropy_symbols(self, enc: codec.EncodedFeatures, stream: Hashable) -> np.ndarray:
        if self.temporal is None:
            raise CodecError("entropy-coded features, but this bundle has no entropy tables; edge and server run "
                             "different bundles")
        return self.temporal.symbols(stream, enc, self.max_bytes)

    def decode_batch(self, msgs: Sequence[Any], streams: Sequence[Hashable]) -> tuple[np.ndarray, list[Exception | None]]:
        """Received SharedFeatures -> the features of those that decode, stacked in order, and
        per message its error (BundleError: another model; CodecError, ResyncPending: a bad
        or unreferenced payload; None: decoded). Each message is checked alone; all of them
        are dequantized together in one pass (the per-frame Python is the server's cost)."""
        errors: list[Exception | None] = [None] * len(msgs)
        symbols, encs, kept = [], [], []
        for i, (msg, stream) in enumerate(zip(msgs, streams)):
            try:
                self.check_model(msg)
                enc = self._for_this_bundle(codec.from_message(msg))
                q = self._entropy_symbols(enc, stream) if enc.codec == "entropy" else codec.symbols(enc, self.max_bytes)
            except MtlSplitError as e:
                errors[i] = e
                continue
            symbols.append(q)
            encs.append(enc)
            kept.append(i)
        if not kept:
            return np.zeros((0, *self.manifest.features.shape), np.float32), errors
        features, finite = codec.dequantize_many(symbols, encs)
        for i, ok in zip(kept, finite):
            if not ok:
                errors[i] = CodecError("decoded features contain NaN or inf; corrupt payload or quantization scale")
        return features[finite], errors

    def check_model(self, msg: Any) -> None:
        """Schema version, then model fingerprint, of a received SharedFeatures: before any decoding."""
        codec.check_version(msg)
        theirs = bytes(msg.model_fingerprint)
        if theirs != self.fingerprint:
            raise BundleError(f"features come from model fingerprint {theirs.hex()}, this server runs "
                              f"{self.manifest.model_id} ({self.fingerprint.hex()}); deploy the same bundle on edge "
                              "and server (the edge's backbone_info names its model)")

    def frame_size(self, msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
        """The (width, height) of the camera frame a received SharedFeatures was made from
        ((0, 0): none). CodecError for a malformed layout or a frame larger than max_pixels:
        dense results are that large, so a hostile size is refused before any work."""
        width, height = codec.from_message(msg).source_size
        if width * height > max_pixels:
            raise CodecError(f"features of a {width}x{height} camera frame, over the server's max_pixels "
                             f"{max_pixels}; raise max_pixels if the camera really is that large")
        return width, height

    def decode_message(self, msg: Any, stream: Hashable = None, max_pixels: int = DEFAULT_MAX_PIXELS
                       ) -> tuple[np.ndarray, tuple[int, int]]:
        """A received SharedFeatures -> (features, its camera frame's (width, height)).
        BundleError for another model's features, CodecError for a malformed or undecodable
        one, or one whose frame is larger than max_pixels."""
        self.check_model(msg)
        size = self.frame_size(msg, max_pixels)
        return self.decode(codec.from_message(msg), stream), size

    def predict(self, features: np.ndarray, tasks: Sequence[str] | None = None) -> list[dict[str, Result]]:
        """(N, *feature shape) -> per frame {task: Prediction or DenseResult} for `tasks`
        (default: all). Dense results are in the model input's pixels (DenseResult.in_source
        maps them onto the camera frame)."""
        outputs = self.run_heads(features, tasks)
        return self.results(outputs, range(len(features)))

    def run_heads(self, features: np.ndarray, tasks: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """(N, *feature shape) -> every asked task's raw head output (N, ...), in task order."""
        specs = [self.manifest.task(t) for t in tasks] if tasks is not None else list(self.manifest.tasks)
        if not specs or not len(features):
            return {}
        names = [t.output for t in specs]
        outputs = [np.concatenate(parts) for parts in zip(*(
            self.backend.run({FEATURES_NAME: features[s]}, names) for s in _chunks(len(features), self.max_batch)))]
        return {spec.name: raw for spec, raw in zip(specs, outputs)}

    def results(self, outputs: dict[str, np.ndarray], rows: Sequence[int]) -> list[dict[str, Result]]:
        """Frames `rows` of run_heads' outputs as {task: Prediction or DenseResult} each
        (classification tasks in one softmax over the rows)."""
        size = (self.manifest.input.width, self.manifest.input.height)
        rows = list(rows)
        out: list[dict[str, Result]] = [{} for _ in rows]
        for name, raw in outputs.items():
            spec = self.manifest.task(name)
            if spec.dense:
                for frame, i in zip(out, rows):
                    frame[name] = DenseResult(name, spec.kind, postprocess(spec.kind, raw[i], size))
                continue
            probs = softmax(np.asarray(raw[rows], np.float32))
            for frame, p, k in zip(out, probs, probs.argmax(axis=1).tolist()):
                frame[name] = Prediction(name, k, spec.classes[k], float(p[k]), p)
        return out


def finite_frames(outputs: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Which of n frames have finite head outputs for every task (inf logits make NaN scores:
    a frame with any is refused, never published)."""
    ok = np.ones(n, bool)
    for raw in outputs.values():
        ok &= np.isfinite(raw.reshape(n, -1)).all(axis=1)
    return ok


def run_offline(edge: EdgeModel, server: ServerModel, frames: Sequence[np.ndarray],
                tasks: Sequence[str] | None = None) -> list[dict[str, Prediction]]:
    """The whole pipeline in one process, one frame at a time like a one-camera edge:
    the reference the live nodes are compared with."""
    features = np.stack([server.decode(edge([f])[0], "") for f in frames])
    return server.predict(features, tasks)
