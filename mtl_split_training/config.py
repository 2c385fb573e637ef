"""Training configs: YAML file + `--set a.b=value` overrides -> validated, frozen dataclasses."""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtl_split_core.bundle import InputSpec

from .datasets import DataOptions
from .errors import TrainingError
from .models import ModelSpec
from .weighting import WEIGHTINGS

class _Loader(yaml.SafeLoader):
    """YAML as people write numbers today: PyYAML follows YAML 1.1, where `5e-4` (no dot) is a
    string, and `--set train.lr=5e-4` would reach the optimizer as text."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


MODES = ("mtl", "stl")
SCHEDULES = ("step", "cosine", "none")


@dataclass(frozen=True)
class DataConfig(DataOptions):
    """The `data:` section: every DataOptions field (their defaults live there) plus where the
    images come from and how they are normalized. `seed` is the run's, not data's."""

    spec: str = "shapes"
    mean: tuple[float, float, float] = InputSpec.mean
    std: tuple[float, float, float] = InputSpec.std
    workers: int = 0

    def options(self, seed: int) -> DataOptions:
        fields = {f.name for f in dataclasses.fields(DataOptions)}
        return DataOptions(**{**{k: getattr(self, k) for k in fields}, "seed": seed})

    def input_spec(self) -> InputSpec:
        return InputSpec(width=self.size, height=self.size, mean=self.mean, std=self.std,
                         resize_mode=self.resize_mode)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-2
    schedule: str = "step"  # step | cosine | none
    step_size: int = 10  # StepLR period in epochs
    gamma: float = 0.1
    weighting: str = "sum"  # a registered weighting (weighting.WEIGHTINGS): sum | uncertainty | dwa | upgrad | ...
    max_batches: int | None = None  # cap on batches per epoch (tests, smoke runs)
    eval_batch_size: int = 256
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # CPU threads per process (torch.set_num_threads); None = torch's default
    # Weight of the rate term (bits per frame of the entropy-coded bottleneck, model.entropy)
    # against the sum of task losses: larger = fewer bytes, lower accuracy.
    rate_lambda: float = 0.01
    rate_warmup_epochs: float = 0.0  # rate_lambda grows linearly from 0 over this many epochs
    # Start from a trained model (a finished run or model directory): its tensors whose names
    # and shapes match (backbone stages, heads by task name); a new bottleneck starts fresh.
    init_from: str | None = None
    # Learn also a trained model's softened logits (tasks with logits), weighted distill_weight.
    distill_from: str | None = None
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    # Also pull every shared level (the decoded split tensor and each stage after it) towards
    # the teacher's, weighted distill_features (0: off): what the server's copied stages expect.
    distill_features: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"train.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        WEIGHTINGS.get(self.weighting.lower())  # an unknown name fails here, naming the choices
        if self.rate_lambda < 0 or self.rate_warmup_epochs < 0:
            raise TrainingError(f"train.rate_lambda and train.rate_warmup_epochs must be >= 0, got "
                                f"{self.rate_lambda} and {self.rate_warmup_epochs}")
        if self.distill_weight < 0 or self.distill_temperature <= 0 or self.distill_features < 0:
            raise TrainingError(f"train.distill_weight and train.distill_features must be >= 0 and "
                                f"train.distill_temperature > 0, got {self.distill_weight}, {self.distill_features} "
                                f"and {self.distill_temperature}")
        if self.epochs < 1 or self.batch_size < 2:
            raise TrainingError("train.epochs must be >= 1 and train.batch_size >= 2 (BatchNorm)")


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    mode: str = "mtl"  # mtl: one shared backbone; stl: one full model per task
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)  # ModelSpec fields except input_size
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TrainingError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def model_spec(self) -> ModelSpec:
        return ModelSpec(input_size=self.data.size, **self.model)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        del d["data"]["seed"]  # inherited from DataOptions; the run's seed is the top-level one
        return d


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise TrainingError(f"{where} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TrainingError(f"unknown key(s) {', '.join(f'{where}.{k}' if where else k for k in unknown)}; "
                            f"known: {', '.join(known)}")
    _check_numbers(cls, values, where)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _check_numbers(cls: type, values: dict[str, Any], where: str) -> None:
    """A number field given text or a flag fails here with its name, not deep in training."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        allowed = set(typing.get_args(hints[key])) or {hints[key]}
        if value is None and type(None) in allowed:
            continue
        numeric = {int, float} & allowed
        if not numeric or allowed - {int, float, type(None)}:
            continue  # not purely a number field
        ok = isinstance(value, int if numeric == {int} else (int, float)) and not isinstance(value, bool)
        if not ok:
            kind = "an integer" if numeric == {int} else "a number"
            raise TrainingError(f"{where + '.' if where else ''}{key} must be {kind}, got {value!r}")


def _without_seed(data: Any) -> Any:
    if isinstance(data, dict) and "seed" in data:
        raise TrainingError("data.seed is not a config key: the run's top-level `seed` seeds the data too")
    return data


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    values = _build(RunConfig, raw, "")
    model = values.get("model") or {}
    model_keys = {f.name for f in dataclasses.fields(ModelSpec)} - {"input_size"}
    bad = sorted(set(model) - model_keys)
    if bad:
        hint = " (the input size is data.size)" if "input_size" in bad else ""
        raise TrainingError(f"unknown key(s) {', '.join('model.' + k for k in bad)}{hint}; known: {', '.join(sorted(model_keys))}")
    try:
        config = RunConfig(
            **{k: v for k, v in values.items() if k not in ("data", "train", "model")},
            data=DataConfig(**_build(DataConfig, _without_seed(values.get("data") or {}), "data")),
            model=dict(model),
            train=TrainConfig(**_build(TrainConfig, values.get("train") or {}, "train")),
        )
        config.model_spec()  # validates the model section now, not after data loading
    except TypeError as e:
        raise TrainingError(f"bad config: {e}") from e
    return config


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=value` (value parsed as YAML) into a copy of the raw config mapping."""
    out = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise TrainingError(f"--set expects key=value, got {item!r}")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise TrainingError(f"--set {key}: {p} is not a section")
        node[leaf] = _yaml(text)
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> tuple[RunConfig, dict[str, Any]]:
    """Parse a YAML config with overrides: (validated config, the raw mapping to record)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"config {path} does not exist (configs live in training/configs/)")
    try:
        raw = _yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise TrainingError(f"{path}: invalid YAML ({e})") from e
    raw = apply_overrides(raw, overrides or [])
    return config_from_dict(raw), raw
