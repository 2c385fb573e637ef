"""Dense heads, losses and metrics: shapes at every split point, CenterNet targets and losses,
metrics against hand-computed values, every head exported and matching torch in ONNX
Runtime, and a short real training run on the dense scenes with a Jacobian-descent weighting."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from mtl_split_core.bundle import HEADS_FILE, TaskSpec, load_manifest
from mtl_split_core.dense import Boxes, postprocess
from mtl_split_training.datasets.scenes import TASKS
from mtl_split_training.errors import TrainingError
from mtl_split_training.models import ModelSpec, SplitModel
from mtl_split_training.task_losses import centre_targets, detection_loss, focal_loss, task_loss
from mtl_split_training.task_metrics import DepthMeter, SegmentationMeter, coco_map

pytestmark = pytest.mark.training
BY_NAME = {t.name: t for t in TASKS}
DENSE = tuple(BY_NAME[n] for n in ("segmentation", "depth", "detection"))


@pytest.mark.parametrize("split", [-1, "blocks.3", "blocks.1"])
def test_dense_outputs_have_the_bundle_layout_at_any_split(split):
    model = SplitModel(ModelSpec(split=split, head="pooled", bottleneck=4, input_size=64),
                       (BY_NAME["shape"], *DENSE)).eval()
    out = model(torch.randn(2, 3, 64, 64))
    assert out["shape"].shape == (2, 4)
    assert out["segmentation"].shape == (2, 6, 64, 64)
    assert out["depth"].shape == (2, 1, 64, 64) and (out["depth"] > 0).all()
    assert out["detection"].shape == (2, 4 + 4, 16, 16)
    heat = out["detection"][:, :4]
    assert ((heat >= 0) & (heat <= 1)).all() and (out["detection"][:, 4:] > 0).all()


def test_centre_targets_put_one_peak_per_box():
    boxes = [Boxes([[8, 8, 24, 16], [40, 40, 56, 60]], [1, 2]), Boxes(np.zeros((0, 4)), [])]
    heat, cells, gt = centre_targets(boxes, 3, (16, 16), (4.0, 4.0), torch.device("cpu"))
    assert heat.shape == (2, 3, 16, 16) and (heat[1] == 0).all()
    assert cells.tolist() == [[0, 3, 4], [0, 12, 12]]
    assert heat[0, 1, 3, 4] == 1 and heat[0, 2, 12, 12] == 1 and int((heat == 1).sum()) == 2
    assert heat[0, 1, 3, 5] > heat[0, 1, 3, 7] > 0  # a Gaussian around the centre
    np.testing.assert_array_equal(gt.numpy(), boxes[0].xyxy)


def test_detection_loss_is_low_for_the_right_answer_and_high_otherwise():
    boxes = [Boxes([[8, 8, 24, 16]], [1])]
    heat, cells, _ = centre_targets(boxes, 2, (16, 16), (4.0, 4.0), torch.device("cpu"))
    good_heat = torch.logit(heat.clamp(1e-4, 1 - 1e-4))
    ltrb = torch.zeros(1, 4, 16, 16)
    ltrb[0, :, 3, 4] = torch.log(torch.tensor([18.0 - 8, 14 - 8, 24 - 18, 16 - 14]) / 4)  # centre (18, 14)
    good = detection_loss(good_heat, ltrb, boxes, 2, 64)
    bad = detection_loss(torch.zeros(1, 2, 16, 16), torch.zeros(1, 4, 16, 16), boxes, 2, 64)
    assert float(good) < 0.05 < float(bad)
    assert float(focal_loss(torch.full((1, 2, 4, 4), -9.0), torch.zeros(1, 2, 4, 4))) < 1e-3


def test_segmentation_and_depth_losses_ignore_unlabelled_pixels():
    seg, depth = DENSE[0], DENSE[1]
    target = torch.full((1, 4, 4), 255)
    target[0, 0, 0] = 2
    logits = torch.zeros(1, 6, 4, 4)
    logits[0, 2, 0, 0] = 20.0
    assert float(task_loss(seg, {"logits": logits}, target, 4)) < 1e-6
    truth = torch.zeros(1, 4, 4)
    truth[0, 1, 1] = 2.0
    assert float(task_loss(depth, {"log_depth": torch.full((1, 1, 4, 4), float(np.log(2.0)))}, truth, 4)) < 1e-6


def test_metrics_match_hand_computed_values():
    seg = SegmentationMeter(TaskSpec("s", ("a", "b", "c"), "segmentation"))
    seg.update(np.array([[0, 1], [1, 1]], np.uint8), np.array([[0, 1], [0, 255]], np.uint8))
    r = seg.result()
    assert r["miou"] == pytest.approx(0.5) and r["iou"]["a"] == 0.5 and r["iou"]["c"] is None
    assert r["pixel_accuracy"] == pytest.approx(2 / 3)
    depth = DepthMeter(TaskSpec("d", (), "depth"))
    depth.update(np.array([[1.1, 2.0, 9.0]], np.float32), np.array([[1.0, 2.5, 0.0]], np.float32))
    r = depth.result()
    assert r["abs_rel"] == pytest.approx((0.1 + 0.2) / 2, rel=1e-5)
    assert r["rmse_m"] == pytest.approx(np.sqrt((0.01 + 0.25) / 2), rel=1e-5) and r["delta1"] == 0.5  # 2.5 / 2.0 is not < 1.25
    truth = [Boxes([[10, 10, 30, 30], [50, 50, 60, 70]], [0, 1])]
    assert coco_map(truth, [Boxes(truth[0].xyxy, [0, 1], [0.9, 0.8])], [(64, 64)], ("a", "b"))["map"] == 1.0
    half = coco_map(truth, [Boxes([[10, 10, 30, 30]], [0], [0.9])], [(64, 64)], ("a", "b"))
    assert half["map50"] == pytest.approx(0.5)
    assert coco_map(truth, [Boxes(np.zeros((0, 4)), [])], [(64, 64)], ("a", "b"))["map50"] == 0.0


@pytest.fixture(scope="module")
def dense_bundle(tmp_path_factory):
    from mtl_split_training.testing import make_tiny_bundle

    out = tmp_path_factory.mktemp("dense") / "b"
    make_tiny_bundle(out, tasks=("shape", "segmentation", "depth", "detection"), size=32, split="blocks.3",
                     bottleneck=4, head="pooled")
    return out


def test_every_head_exports_and_matches_torch_in_onnx_runtime(dense_bundle):
    from mtl_split_training.models import load_model  # noqa: F401 (the bundle is rebuilt from its own files)

    manifest = load_manifest(dense_bundle)
    assert [(t.name, t.kind) for t in manifest.tasks] == [("shape", "classification"), ("segmentation", "segmentation"),
                                                          ("depth", "depth"), ("detection", "detection")]
    session = ort.InferenceSession(str(dense_bundle / HEADS_FILE), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [t.output for t in manifest.tasks]
    assert [o.name for o in session.get_outputs()][1:] == ["logits_segmentation", "depth_depth", "detections_detection"]
    features = np.random.default_rng(0).normal(size=(3, *manifest.features.shape)).astype(np.float32)
    outs = session.run(None, {"features": features})
    assert outs[1].shape == (3, 6, 32, 32) and outs[2].shape == (3, 1, 32, 32) and outs[3].shape == (3, 8, 8, 8)
    mask = postprocess("segmentation", outs[1][0], (32, 32))
    assert mask.dtype == np.uint8 and mask.shape == (32, 32)
    assert isinstance(postprocess("detection", outs[3][0], (32, 32)), Boxes)


def test_dense_export_check_compares_each_head_with_torch(tmp_path):
    """The export refuses a bundle whose ONNX output differs from torch (here it agrees: the
    check ran on every dense output and the manifest was written)."""
    from mtl_split_training.export import export_bundle

    torch.manual_seed(0)
    model = SplitModel(ModelSpec(split="blocks.1", head="pooled", input_size=32), DENSE)
    manifest = export_bundle(model, tmp_path / "b")
    assert manifest.task_names == ["segmentation", "depth", "detection"]


def test_a_wider_bottleneck_sees_neighbours_refines_on_the_server_and_exports(tmp_path):
    """model.bottleneck_kernel=3: each symbol depends on its neighbours' features (and only
    theirs); model.bottleneck_blocks: the server refines the decoded tensor. The bundle
    matches torch in ONNX Runtime (export_bundle checks) with the same wire shape as 1x1."""
    from mtl_split_training.export import export_bundle

    torch.manual_seed(0)
    spec = ModelSpec(split="blocks.1", head="pooled", input_size=32, bottleneck=4, entropy=True,
                     bottleneck_kernel=3, bottleneck_blocks=2)
    model = SplitModel(spec, DENSE).eval()
    assert model.encoder.conv.weight.shape[-2:] == (3, 3) and len(model.decoder.blocks) == 2
    split = torch.nn.Sequential(*model.stages[:model.split_index + 1])(torch.randn(1, 3, 32, 32))
    moved = split.clone()
    moved[..., 2, 2] += 5.0
    change = (model.encoder(moved) != model.encoder(split)).any(dim=1)[0]
    assert change[1:4, 1:4].any() and not change[4:].any() and not change[:, 4:].any() and change[1, 1]
    manifest = export_bundle(model, tmp_path / "b")
    plain = SplitModel(ModelSpec(split="blocks.1", head="pooled", input_size=32, bottleneck=4), DENSE)
    assert manifest.features.shape == plain.feature_shape
    for bad, match in (({"bottleneck_kernel": 5, "bottleneck": 4}, "bottleneck_kernel"),
                       ({"bottleneck_blocks": 2}, "set model.bottleneck"),
                       ({"bottleneck_blocks": -1, "bottleneck": 4}, "bottleneck_blocks")):
        with pytest.raises(TrainingError, match=match):
            ModelSpec(**bad)


@pytest.mark.parametrize("weighting", ["uncertainty", "upgrad"])
def test_dense_mtl_trains_with_any_weighting(tmp_path, weighting):
    from mtl_split_training.config import config_from_dict
    from mtl_split_training.run import train_run

    raw = {"name": "dense_tiny", "data": {"spec": "scenes", "size": 32, "train_size": 32, "val_size": 8,
                                          "test_size": 8, "tasks": ["count", "segmentation", "depth", "detection"]},
           "model": {"split": "blocks.3", "head": "pooled", "bottleneck": 4, "decoder_channels": 8},
           "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "max_batches": 2, "threads": 1,
                     "weighting": weighting}}
    metrics = train_run(config_from_dict(raw), raw, tmp_path / "run")
    member = metrics["members"]["mtl"]
    assert set(member["test"]) == {"count", "segmentation", "depth", "detection"}
    assert member["test"]["depth"]["metric"] == "abs_rel" and member["test"]["depth"]["abs_rel"] > 0
    assert member["test"]["detection"]["metric"] == "map50"
    assert all(np.isfinite(v) for v in member["epochs"][0]["train_loss_per_task"].values())


def test_bench_dense_measures_bytes_metrics_and_compute(dense_bundle):
    from mtl_split_bench.dense import image_rows, measure
    from mtl_split_training.datasets import DataOptions, open_data

    split = open_data("scenes", DataOptions(size=32, test_size=3, tasks=("segmentation", "depth", "detection"))
                      ).split("test")
    samples = [split.sample(i) for i in range(3)]
    frames, labels = [s[0] for s in samples], [s[1] for s in samples]
    row = measure(dense_bundle, frames, labels)
    assert row["split_shape"] == [4, 2, 2] and row["wire"] == "int8/zstd" and 0 < row["payload_bytes"] < 64
    assert row["message_bytes"] > row["payload_bytes"]
    assert {"segmentation_miou", "depth_abs_rel", "detection_map50"} <= set(row)
    assert row["edge_ms"] > 0 and row["server_ms"] > 0
    images = {r["name"]: r for r in image_rows(dense_bundle, frames, labels)}
    assert set(images) == {"JPEG-90", "H.264 CRF 23", "H.264 CRF 28"}
    assert all(r["message_bytes"] > r["payload_bytes"] > 0 and 0 <= r["segmentation_miou"] <= 1
               for r in images.values())
