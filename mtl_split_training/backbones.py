"""timm backbones cut into feature stages, so any stage boundary can be the split point.

We build the full timm model and cut it ourselves rather than use
`features_only=True`: a features_only wrapper runs every stage in one forward and cannot be
sliced into an edge part and a server part, and a full model also loads ordinary timm
checkpoints. The stage ends are timm's own `feature_info` modules (the ones features_only
would return), so `stages[:k]` is exactly what `features_only, out_indices=(k-1,)` computes;
`stages[k:]` is the rest of the extractor, which the server runs.

EfficientNet gets one more stage, `conv_head` (1x1 conv to 1280 + BN + act): the paper splits
EfficientNet-B0 after it (1280x7x7 at 224 px), timm's last feature stage stops before it.

Initial weights (Init): random; timm's ImageNet weights through timm's own hub mechanism
(`model.pretrained: true`, needs internet or timm's cache); a local timm checkpoint through
the same mechanism (`model.pretrained_file`, timm's pretrained_cfg_overlay file, e.g. one
written by `mtl-split save-backbone` from a run on other data); or any state dict whose
matching tensors are copied (`model.weights`).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from torch import nn

from .errors import TrainingError
from .registry import Registry


@dataclass(frozen=True)
class StageInfo:
    name: str  # the timm module that ends this stage (the split point's name)
    channels: int
    reduction: int  # input size / output size


def _atoms(model: nn.Module, ends: list[str]) -> list[tuple[str, nn.Module]]:
    """The model's top-level modules in forward order, expanding containers that hold a stage end."""
    out: list[tuple[str, nn.Module]] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            full = prefix + name
            if full not in ends and any(e.startswith(full + ".") for e in ends):
                walk(child, full + ".")
            else:
                out.append((full, child))

    walk(model, "")
    last = max(i for i, (name, _) in enumerate(out) if name in ends)
    return out[:last + 1]


@dataclass(frozen=True)
class Init:
    """Where a backbone's first weights come from (ModelSpec: pretrained, pretrained_file, weights)."""

    pretrained: bool = False  # timm's ImageNet weights, through timm's hub mechanism
    pretrained_file: str | None = None  # a local timm checkpoint, through the same mechanism
    weights: str | None = None  # a state dict, matching tensors copied (load_weights)

    @property
    def from_timm(self) -> bool:
        return self.pretrained or self.pretrained_file is not None


Stages = tuple[list[nn.Sequential], list[StageInfo]]
# name -> builder(Init) -> stages. The registered ones are tested; any other timm CNN with
# feature_info is built by its timm name too.
BACKBONES: Registry[Callable[[Init], Stages]] = Registry("backbone", "model.backbone")


def build_stages(name: str, init: Init = Init()) -> Stages:
    """Backbone `name` as consecutive stages, initialised as `init` says."""
    return BACKBONES.get(name)(init) if name in BACKBONES else timm_stages(name, init)


def create_timm(name: str, init: Init = Init()) -> nn.Module:
    """The full timm model `name`. With timm weights (ImageNet or a local file) it has no
    classifier (num_classes=0: timm then drops the checkpoint's, which we never use)."""
    import timm

    if not init.from_timm:
        try:
            return timm.create_model(name, pretrained=False)
        except RuntimeError as e:  # timm: "Unknown model"
            raise TrainingError(f"unknown backbone {name!r} ({e}); registered: {', '.join(BACKBONES)}") from e
    overlay = {}
    if init.pretrained_file is not None:
        path = Path(init.pretrained_file).expanduser()
        if not path.is_file():
            raise TrainingError(f"model.pretrained_file {path} does not exist")
        overlay = {"file": str(path)}
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
    except Exception as e:  # noqa: BLE001 - hub, network and file errors of every kind: one line
        where = (f"the file {init.pretrained_file}" if overlay else
                 "timm's ImageNet weights (from the Hugging Face hub; no internet here?)")
        raise TrainingError(f"model.pretrained: cannot load {where} into {name} ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:300]}); offline, give a local timm checkpoint as "
                            "model.pretrained_file (e.g. from `mtl-split save-backbone`)") from e
    if overlay:
        _check_file_matches(model, Path(overlay["file"]), name)
    return model


def _check_file_matches(model: nn.Module, path: Path, name: str) -> None:
    """timm loads a file non-strictly once the classifier is dropped: refuse one that filled
    fewer than half of the backbone's tensors (another architecture's checkpoint)."""
    own = model.state_dict()
    state = read_state(path)
    matched = sum(1 for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape))
    if matched * 2 < len(own):
        raise TrainingError(f"model.pretrained_file {path}: only {matched} of {name}'s {len(own)} tensors are in "
                            "it: a checkpoint of another backbone?")


def timm_stages(name: str, init: Init = Init()) -> Stages:
    """The feature extractor of timm model `name` as consecutive stages."""
    from timm.models.efficientnet import EfficientNet

    model = create_timm(name, init)
    if init.weights is not None:
        load_weights(model, Path(init.weights))
    infos = [StageInfo(f["module"], int(f["num_chs"]), int(f["reduction"])) for f in model.feature_info]
    ends = [i.name for i in infos]
    stages: list[nn.Sequential] = []
    current: list[tuple[str, nn.Module]] = []
    for atom_name, module in _atoms(model, ends):
        current.append((atom_name.replace(".", "_"), module))
        if atom_name in ends:
            stages.append(nn.Sequential(OrderedDict(current)))
            current = []
    if isinstance(model, EfficientNet):
        stages.append(nn.Sequential(OrderedDict(conv_head=model.conv_head, bn2=model.bn2)))
        infos.append(StageInfo("conv_head", int(model.num_features), infos[-1].reduction))
    return stages, infos


for _name, _summary in (
    ("mobilenetv3_small_100", "MobileNetV3-Small 1.0 (timm): the paper's light edge backbone, 576 channels at the end"),
    ("mobilenetv3_large_100", "MobileNetV3-Large 1.0 (timm), 960 channels at the end"),
    ("efficientnet_b0", "EfficientNet-B0 (timm) + its conv_head stage: 1280 channels at the end, "
                        "as the paper splits it"),
    ("vgg16", "VGG16 (timm): the paper's default, 512 channels at the end"),
    ("resnet18", "ResNet-18 (timm), 512 channels at the end"),
):
    BACKBONES.add(_name, partial(timm_stages, _name), _summary)


def read_state(path: Path) -> dict:
    """A state dict from safetensors, or from a torch file via weights_only=True (never pickle)."""
    import torch

    if not path.is_file():
        raise TrainingError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises UnpicklingError/RuntimeError for non-weights files
            raise TrainingError(f"{path}: not a plain state dict loadable with weights_only=True ({e})") from e
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise TrainingError(f"{path}: expected a state dict (name -> tensor)")
    return state


def load_weights(model: nn.Module, path: Path) -> None:
    """Copy the tensors of a local state dict whose names and shapes match the model's."""
    state = read_state(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise TrainingError(f"{path}: no tensor matches the backbone's parameter names/shapes")
    model.load_state_dict(usable, strict=False)


def timm_checkpoint(name: str, stages: nn.ModuleList) -> dict:
    """Trained stages as a checkpoint of the timm model `name` (its own tensor names, no
    classifier): what model.pretrained_file loads through timm, e.g. to start a model for
    your data from one trained on other data."""
    from timm.models.efficientnet import EfficientNet

    model = create_timm(name)
    ends = [f["module"] for f in model.feature_info]
    names = {atom.replace(".", "_"): atom for atom, _ in _atoms(model, ends)}
    if isinstance(model, EfficientNet):
        names |= {"conv_head": "conv_head", "bn2": "bn2"}
    state = {f"{names[child]}.{key}": value for stage in stages for child, module in stage.named_children()
             for key, value in module.state_dict().items()}
    own = model.state_dict()
    wrong = [k for k in state if k not in own or own[k].shape != state[k].shape]
    if wrong:
        raise TrainingError(f"these stages are not {name}'s: {', '.join(wrong[:5])}")
    model.load_state_dict(state, strict=False)
    classifier = model.default_cfg.get("classifier")
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()
            if not (classifier and k.startswith(classifier + "."))}


def resolve_split(infos: list[StageInfo], split: int | str) -> int:
    """Split point (stage index, negative from the end, or stage name) -> index of the last edge stage."""
    names = [i.name for i in infos]
    if isinstance(split, str) and not split.lstrip("-").isdigit():
        if split not in names:
            raise TrainingError(f"unknown split point {split!r}: use a stage index or one of {', '.join(names)}")
        return names.index(split)
    index = int(split)
    if not -len(infos) <= index < len(infos):
        raise TrainingError(f"split index {index} out of range for {len(infos)} stages ({', '.join(names)})")
    return index % len(infos)
