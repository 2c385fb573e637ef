"""Split models: stage cuts reproduce timm, split points move work between edge and server."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from mtl_split_core.bundle import TaskSpec  # noqa: E402
from mtl_split_training.backbones import BACKBONES, build_stages  # noqa: E402
from mtl_split_training.errors import TrainingError  # noqa: E402
from mtl_split_training.heads import HEADS  # noqa: E402
from mtl_split_training.models import ModelSpec, SplitModel, count_parameters  # noqa: E402

pytestmark = pytest.mark.training
TASKS = (TaskSpec("a", ("0", "1")), TaskSpec("b", ("x", "y", "z")))
# Channels at the last split point: the paper's split tensors (VGG 512, MobileNetV3-S 576,
# EfficientNet-B0 1280 incl. conv_head).
PAPER_CHANNELS = {"mobilenetv3_small_100": 576, "mobilenetv3_large_100": 960, "efficientnet_b0": 1280,
                  "vgg16": 512, "resnet18": 512}


@pytest.mark.parametrize("name", BACKBONES.names())
def test_stages_compute_timm_forward_features(name):
    torch.manual_seed(0)
    stages, infos = build_stages(name)
    torch.manual_seed(0)
    reference = timm.create_model(name, pretrained=False).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ours = torch.nn.Sequential(*stages).eval()(x)
        theirs = reference.forward_features(x)
    torch.testing.assert_close(ours, theirs)
    assert infos[-1].channels == PAPER_CHANNELS[name] == ours.shape[1]


@pytest.mark.parametrize("head", HEADS.names())
def test_every_head_gives_logits_per_task(head):
    model = SplitModel(ModelSpec(head=head, input_size=32), TASKS)
    out = model(torch.randn(2, 3, 32, 32))
    assert {t: tuple(v.shape) for t, v in out.items()} == {"a": (2, 2), "b": (2, 3)}
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is not None for p in model.heads.parameters())


def test_every_split_point_computes_the_same_function():
    torch.manual_seed(0)
    full = SplitModel(ModelSpec(backbone="resnet18", input_size=32), TASKS).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = full(x)
    edge_sizes = []
    for split in range(len(full.stage_infos)):
        model = SplitModel(ModelSpec(backbone="resnet18", split=split, input_size=32), TASKS).eval()
        model.load_state_dict(full.state_dict())  # same stage modules, different edge/server cut
        with torch.no_grad():
            features = model.edge(x)
            out = model.server_part()(features)
        assert features.shape[1] == model.stage_infos[split].channels
        for task, logits in zip(TASKS, out):
            torch.testing.assert_close(logits, expected[task.name])
        edge_sizes.append(count_parameters(model.edge))
    assert edge_sizes == sorted(edge_sizes) and edge_sizes[0] < edge_sizes[-1]


def test_split_by_name_and_bottleneck_shapes():
    model = SplitModel(ModelSpec(split="blocks.3", bottleneck=16, head="pooled", input_size=64), TASKS)
    assert model.split_point == "blocks.3"
    assert model.feature_shape == (16, 4, 4)  # stride 16 at 64 px, 16 bottleneck channels
    assert len(model.server) > 1  # decoder + the remaining stages run on the server
    out = model(torch.randn(2, 3, 64, 64))
    assert out["b"].shape == (2, 3)


def test_pooled_head_accepts_other_input_sizes():
    model = SplitModel(ModelSpec(head="pooled", input_size=32), TASKS).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 96))["a"].shape == (1, 2)


def test_local_pretrained_weights_are_loaded(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(123)
    donor = timm.create_model("resnet18", pretrained=False)
    save_file(donor.state_dict(), str(tmp_path / "resnet18.safetensors"))
    torch.save(donor.state_dict(), tmp_path / "resnet18.pth")
    for file in ("resnet18.safetensors", "resnet18.pth"):
        model = SplitModel(ModelSpec(backbone="resnet18", input_size=32, weights=str(tmp_path / file)), TASKS)
        torch.testing.assert_close(model.stages[0].conv1.weight, donor.conv1.weight)
    (tmp_path / "junk.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(Exception):
        SplitModel(ModelSpec(backbone="resnet18", input_size=32, weights=str(tmp_path / "junk.safetensors")), TASKS)
    with pytest.raises(TrainingError, match="does not exist"):
        SplitModel(ModelSpec(backbone="resnet18", input_size=32, weights=str(tmp_path / "none.pth")), TASKS)


def test_bad_model_specs_are_clear_errors():
    with pytest.raises(TrainingError, match="unknown backbone"):
        SplitModel(ModelSpec(backbone="no_such_net", input_size=32), TASKS)
    with pytest.raises(TrainingError, match="unknown split point"):
        SplitModel(ModelSpec(split="layer9", input_size=32), TASKS)
    with pytest.raises(TrainingError, match="out of range"):
        SplitModel(ModelSpec(split=7, input_size=32), TASKS)
    with pytest.raises(TrainingError, match="head"):
        ModelSpec(head="mlp")
