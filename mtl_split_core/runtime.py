"""The bundle's two halves as plain in-process objects, ROS-free.

EdgeModel: camera frames -> backbone features -> encoded payloads.
ServerModel: payloads (or SharedFeatures messages) -> decoded features -> task predictions.

The edge and server nodes, offline evaluation and the benchmarks all call these, so a
result computed live over ROS and one computed offline come from one code path.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import codec
from .backends import Backend, open_backend
from .bundle import BACKBONE_FILE, FEATURES_NAME, HEADS_FILE, IMAGE_INPUT, InputSpec, Manifest, load_manifest
from .dense import DensePrediction, postprocess, to_source
from .errors import BundleError, CodecError
from .options import DEFAULT_MAX_BYTES
from .preprocess import geometry, preprocess


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

    def in_source(self, spec: InputSpec, width: int, height: int) -> DensePrediction:
        """The result on the width x height camera frame the input was made from (undoing the
        manifest's resize / center_crop / letterbox)."""
        return to_source(self.value, geometry(width, height, spec), (width, height))


Result = Prediction | DenseResult


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, max(size, 1))]


class EdgeModel:
    """The edge half.

    bundle_dir: a bundle from `mtl-split export`.
    backend, precision: which inference backend (options.BACKENDS) and, for TensorRT, which
        engine precision (options.PRECISIONS or "auto") to open backbone.onnx with.
    threads: ONNX Runtime intra-op threads (0: its default).
    max_batch: most frames per backbone run (a larger call is run in chunks).
    dtype, codec_name, level, per_channel: the wire encoding (codec.DTYPES, codec.CODECS,
        compression level, per-channel quantization). None: the bundle's FeatureSpec, including
        a learned bottleneck's fixed quantization.
    """

    def __init__(self, bundle_dir: str | Path, *, backend: str = "auto", precision: str = "auto",
                 threads: int = 0, max_batch: int = 1, dtype: str | None = None, codec_name: str | None = None,
                 level: int = 3, per_channel: bool = False) -> None:
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
        self.backend: Backend
        self.backend, self.backend_reason = open_backend(self.bundle_dir, self.manifest, BACKBONE_FILE, backend,
                                                         precision, max_batch, threads)
        self.encode(np.zeros(spec.shape, np.float32))  # invalid dtype/codec/level fail here, not per frame

    def features(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 frames in the manifest's channel order -> float32 (N, *feature shape)."""
        x = preprocess(frames, self.manifest.input)
        out = np.concatenate([self.backend.run({IMAGE_INPUT: x[s]}, [FEATURES_NAME])[0]
                              for s in _chunks(len(x), self.max_batch)])
        if out.shape[1:] != tuple(self.manifest.features.shape):
            raise BundleError(f"backbone returned features of shape {out.shape[1:]}, the manifest says "
                              f"{tuple(self.manifest.features.shape)}; re-export the bundle")
        return out

    def encode(self, feature: np.ndarray) -> codec.EncodedFeatures:
        """One frame's features -> payload."""
        return codec.encode(feature, self.dtype, self.codec, self.level, self.per_channel,
                            self._scale, self._zero_point)

    def __call__(self, frames: Sequence[np.ndarray]) -> list[codec.EncodedFeatures]:
        return [self.encode(f) for f in self.features(frames)]


class ServerModel:
    """The server half: checks and decodes payloads, runs only the heads asked for.

    bundle_dir, backend, precision, threads: as for EdgeModel (heads.onnx is opened).
    max_batch: most frames per heads run (a larger call is run in chunks).
    max_bytes: a payload whose decoded tensor would be larger is refused before allocating.
    """

    def __init__(self, bundle_dir: str | Path, *, backend: str = "auto", precision: str = "auto",
                 threads: int = 0, max_batch: int = 8, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.manifest: Manifest = load_manifest(self.bundle_dir)
        self.max_batch, self.max_bytes = max_batch, max_bytes
        self.backend: Backend
        self.backend, self.backend_reason = open_backend(self.bundle_dir, self.manifest, HEADS_FILE, backend,
                                                         precision, max_batch, threads, per_output=True)

    def decode(self, enc: codec.EncodedFeatures) -> np.ndarray:
        """Payload -> float32 features of this bundle's shape (CodecError otherwise)."""
        x = codec.decode(enc, self.max_bytes)
        if x.shape != tuple(self.manifest.features.shape):
            raise CodecError(f"features of shape {list(x.shape)}, this bundle's heads take "
                             f"{list(self.manifest.features.shape)}; edge and server run different models")
        return x

    def decode_message(self, msg: Any) -> np.ndarray:
        """A received SharedFeatures -> features. BundleError for another model's features,
        CodecError for a malformed or undecodable one."""
        if msg.model_id != self.manifest.model_id:
            raise BundleError(f"features come from model {msg.model_id!r}, this server runs "
                              f"{self.manifest.model_id!r}; deploy the same bundle on edge and server")
        return self.decode(codec.from_message(msg))

    def predict(self, features: np.ndarray, tasks: Sequence[str] | None = None) -> list[dict[str, Result]]:
        """(N, *feature shape) -> per frame {task: Prediction or DenseResult} for `tasks`
        (default: all). Dense results are in the model input's pixels (DenseResult.in_source
        maps them onto the camera frame)."""
        specs = [self.manifest.task(t) for t in tasks] if tasks is not None else list(self.manifest.tasks)
        if not specs or not len(features):
            return [{} for _ in range(len(features))]
        names = [t.output for t in specs]
        outputs = [np.concatenate(parts) for parts in zip(*(
            self.backend.run({FEATURES_NAME: features[s]}, names) for s in _chunks(len(features), self.max_batch)))]
        size = (self.manifest.input.width, self.manifest.input.height)
        out: list[dict[str, Result]] = [{} for _ in range(len(features))]
        for spec, raw in zip(specs, outputs):
            if spec.dense:
                for i in range(len(features)):
                    out[i][spec.name] = DenseResult(spec.name, spec.kind, postprocess(spec.kind, raw[i], size))
                continue
            probs = softmax(np.asarray(raw, np.float32))
            for i, p in enumerate(probs):
                k = int(np.argmax(p))
                out[i][spec.name] = Prediction(spec.name, k, spec.classes[k], float(p[k]), p)
        return out


def run_offline(edge: EdgeModel, server: ServerModel, frames: Sequence[np.ndarray],
                tasks: Sequence[str] | None = None) -> list[dict[str, Prediction]]:
    """The whole pipeline in one process, one frame at a time like a one-camera edge:
    the reference the live nodes are compared with."""
    features = np.stack([server.decode(edge([f])[0]) for f in frames])
    return server.predict(features, tasks)
