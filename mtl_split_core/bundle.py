"""The model bundle: the one contract between training (writes it) and the nodes (read it).

A bundle is a directory:

    manifest.json   this module's Manifest (the only schema of it)
    backbone.onnx   edge part: image batch -> features batch (incl. bottleneck encoder)
    heads.onnx      server part: features batch -> one output per task (see TaskSpec.kind)
    entropy.npz     optional: the entropy bottleneck's integer probability tables
    *.engine        optional TensorRT engines (see mtl_split_core.backends.tensorrt_engine)

model_id is a content hash of the manifest (minus model_id) and so of every file's sha256:
edge and server that agree on model_id run the same weights, and a file that was changed
after export is refused at load time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BundleError

MANIFEST_SCHEMA_VERSION = 2  # 2: tasks have a kind (dense tasks)
MANIFEST_NAME = "manifest.json"
BACKBONE_FILE = "backbone.onnx"
HEADS_FILE = "heads.onnx"
ENTROPY_FILE = "entropy.npz"  # learned symbol tables (mtl_split_core.entropy), integers only
# ONNX tensor names fixed by the export; the nodes never guess them.
IMAGE_INPUT = "image"
FEATURES_NAME = "features"


# What a task predicts, and what its heads.onnx output holds (N = batch, H x W = input size):
#   classification  logits_<task>     (N, classes) raw logits
#   segmentation    logits_<task>     (N, classes, H, W) raw per-pixel logits
#   depth           depth_<task>      (N, 1, H, W) z-depth in metres
#   detection       detections_<task> (N, classes + 4, H/s, W/s) on a grid of stride s: per-class
#                   centre heatmaps (probabilities), then the distances from the cell centre to
#                   the box's left, top, right and bottom edges in input pixels
TASK_KINDS = ("classification", "segmentation", "depth", "detection")
DENSE_KINDS = TASK_KINDS[1:]
_OUTPUT_PREFIX = {"classification": "logits", "segmentation": "logits", "depth": "depth", "detection": "detections"}


def heads_output(task: str, kind: str = "classification") -> str:
    """ONNX output name of one task in heads.onnx."""
    return f"{_OUTPUT_PREFIX[kind]}_{task}"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    classes: tuple[str, ...]  # class names by id; empty for depth
    kind: str = "classification"  # one of TASK_KINDS

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise BundleError(f"task {self.name!r}: kind {self.kind!r} is not one of {', '.join(TASK_KINDS)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def dense(self) -> bool:
        return self.kind in DENSE_KINDS

    @property
    def output(self) -> str:
        return heads_output(self.name, self.kind)


# How a frame of another size or aspect ratio becomes the model input (mtl_split_core.preprocess):
# resize stretches it, center_crop cuts the sides (or top and bottom) that do not fit the
# input's aspect ratio, letterbox keeps all of it and pads the rest with grey.
RESIZE_MODES = ("resize", "center_crop", "letterbox")


@dataclass(frozen=True)
class InputSpec:
    """How a camera frame becomes the backbone's input tensor (N, 3, height, width)."""

    width: int
    height: int
    encoding: str = "rgb8"  # channel order the backbone was trained on
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize_mode: str = "resize"  # one of RESIZE_MODES; training used the same

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise BundleError(f"input resize_mode {self.resize_mode!r} is not one of {', '.join(RESIZE_MODES)}")
        if self.width < 1 or self.height < 1:
            raise BundleError(f"input size {self.width}x{self.height} is empty")


@dataclass(frozen=True)
class FeatureSpec:
    """The split tensor of one frame, and how it is sent by default."""

    shape: tuple[int, ...]
    dtype: str = "float32"  # default wire dtype (the edge may override)
    codec: str = "none"  # default entropy codec
    # Fixed quantization learned with the bottleneck (per tensor); None = per-frame dynamic.
    scale: float | None = None
    zero_point: int | None = None
    # Integer symbol tables of a bottleneck trained with a rate term (codec "entropy"): the
    # bundle file holding them, None for bundles without.
    entropy: str | None = None


@dataclass(frozen=True)
class Manifest:
    backbone: str
    split_point: str
    input: InputSpec
    features: FeatureSpec
    tasks: tuple[TaskSpec, ...]
    files: dict[str, str]  # file name -> sha256
    bottleneck_channels: int | None = None
    created_by: str = "mtl_split"
    extra: dict[str, Any] = field(default_factory=dict)  # training config, metrics, ...
    model_id: str = ""
    schema_version: int = MANIFEST_SCHEMA_VERSION

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise BundleError(f"task {name!r} is not in this bundle (tasks: {', '.join(self.task_names)})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def content_id(self) -> str:
        """Hash of everything but model_id: the model_id this manifest must carry."""
        return content_id(self.to_dict())

    def with_model_id(self) -> "Manifest":
        return dataclasses.replace(self, model_id=self.content_id())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        try:
            version = d.get("schema_version")
            if version != MANIFEST_SCHEMA_VERSION:
                raise BundleError(
                    f"manifest schema_version {version!r} is not {MANIFEST_SCHEMA_VERSION}: "
                    "re-export the bundle with this version of mtl_split"
                )
            return cls(
                backbone=str(d["backbone"]),
                split_point=str(d["split_point"]),
                input=InputSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["input"].items()}),
                features=FeatureSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["features"].items()}),
                tasks=tuple(TaskSpec(name=t["name"], classes=tuple(t["classes"]), kind=t["kind"]) for t in d["tasks"]),
                files=dict(d["files"]),
                bottleneck_channels=d.get("bottleneck_channels"),
                created_by=d.get("created_by", "mtl_split"),
                extra=dict(d.get("extra", {})),
                model_id=str(d["model_id"]),
                schema_version=version,
            )
        except (KeyError, TypeError) as e:
            raise BundleError(f"manifest is malformed ({type(e).__name__}: {e}); re-export the bundle") from e


def content_id(body: dict[str, Any]) -> str:
    """model_id of a manifest's JSON content (its model_id field left out). Checked against
    the file as written, so a field added later with a default does not change old ids."""
    canon = json.dumps({k: v for k, v in body.items() if k != "model_id"}, sort_keys=True, separators=(",", ":"))
    return "mtl-" + hashlib.sha256(canon.encode()).hexdigest()[:20]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Manifest:
    """Hash the bundle's files into the manifest, set model_id, write manifest.json."""
    bundle_dir = Path(bundle_dir)
    files = {name: sha256_file(bundle_dir / name) for name in sorted(manifest.files)}
    final = dataclasses.replace(manifest, files=files).with_model_id()
    (bundle_dir / MANIFEST_NAME).write_text(json.dumps(final.to_dict(), indent=2) + "\n")
    return final


def load_manifest(bundle_dir: str | Path, verify_files: bool = True) -> Manifest:
    """Read and check a bundle: schema, model_id, and (by default) every file's hash."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(
            f"no {MANIFEST_NAME} in {bundle_dir}: point at a directory made by `mtl-split export`"
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{path} is not valid JSON ({e}); re-export the bundle") from e
    manifest = Manifest.from_dict(raw)
    if content_id(raw) != manifest.model_id:
        raise BundleError(
            f"{path}: model_id {manifest.model_id} does not match the manifest's content "
            f"({content_id(raw)}); the manifest was edited by hand — re-export the bundle"
        )
    if verify_files:
        for name, digest in manifest.files.items():
            f = bundle_dir / name
            if not f.is_file():
                raise BundleError(f"{bundle_dir}: {name} is missing; re-export the bundle")
            if sha256_file(f) != digest:
                raise BundleError(
                    f"{f} does not match its hash in {MANIFEST_NAME} (changed after export); "
                    "re-export the bundle instead of replacing files"
                )
    return manifest
