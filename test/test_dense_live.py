"""Dense results over real DDS: a frame published to a real edge + server yields a mono8 class
mask, a 32FC1 depth image in metres and detections, stamped with the frame's header, on the
camera frame's pixel grid (scaled by the server's dense_scale), equal to the in-process
pipeline's, with the class names latched beside them."""
from __future__ import annotations

import numpy as np
import pytest

from mtl_split_core.annotate import Annotations, annotate, classification_line
from mtl_split_core.bundle import load_manifest
from mtl_split_core.dense import resample
from mtl_split_core.runtime import EdgeModel, ServerModel, run_offline

from helpers import image_msg, key

pytestmark = pytest.mark.ros
NS = "/robot_d"


@pytest.fixture(scope="module")
def dense_bundle(tmp_path_factory):
    testing = pytest.importorskip("mtl_split_training.testing", reason="building a bundle needs torch/timm")
    out = tmp_path_factory.mktemp("dense") / "b"
    testing.make_tiny_bundle(out, tasks=("shape", "segmentation", "depth", "detection"), size=32, split="blocks.3",
                             bottleneck=4, head="pooled")
    return out


def _scene(size: int = 48) -> np.ndarray:
    from mtl_split_training.datasets import DataOptions, open_data

    return open_data("scenes", DataOptions(size=size, test_size=1)).split("test").image(0)


def test_a_published_frame_gets_a_mask_a_depth_image_and_detections(ros, launcher, dense_bundle):
    from sensor_msgs.msg import Image

    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    from mtl_split.msg import Detection2DArray, LabelInfo, MultiTaskResult
    from mtl_split_ros import qos
    from mtl_split_ros.dense_results import detections_boxes, image_array

    manifest = load_manifest(dense_bundle)
    launcher.node("server", {"bundle": str(dense_bundle), "discovery_period_s": 0.5, "dense_scale": 0.5})
    for node in ("edge", "viz"):  # the visualization node draws the dense results too
        launcher.node(node, {"bundle": str(dense_bundle)}, namespace=NS,
                      remaps={"/camera/image_raw": f"{NS}/camera/image_raw"})
    base = f"{NS}/mtl_split/results"
    annotated = ros.collect(Image, f"{NS}/mtl_split/annotated")
    results = ros.collect(MultiTaskResult, base)
    masks = ros.collect(Image, f"{base}/segmentation")
    depths = ros.collect(Image, f"{base}/depth")
    boxes = ros.collect(Detection2DArray, f"{base}/detection")
    seg_names = ros.collect(LabelInfo, f"{base}/segmentation/label_info", qos.LATCHED)
    det_names = ros.collect(LabelInfo, f"{base}/detection/label_info", qos.LATCHED)
    pub = ros.node.create_publisher(Image, f"{NS}/camera/image_raw", 10)
    rgb = np.ascontiguousarray(_scene(64)[8:56])  # a 64x48 camera frame into a 32x32 model
    msg = image_msg(rgb, "cam_d")

    def got(messages):
        return next((m for m in messages if key(m.header) == key(msg.header)), None)

    ros.wait_for(lambda: got(masks) and got(depths) and got(boxes), 90, "mask, depth and detections of the frame",
                 tick=lambda: pub.publish(msg), tick_every=0.5)
    mask, depth, dets = got(masks), got(depths), got(boxes)
    # Conventions: mono8 class ids, 32FC1 metres, little-endian packed rows, the source header;
    # the camera frame's grid at dense_scale 0.5: 32x24.
    assert (mask.encoding, mask.width, mask.height, mask.step, mask.is_bigendian) == ("mono8", 32, 24, 32, 0)
    assert (depth.encoding, depth.width, depth.height, depth.step, depth.is_bigendian) == ("32FC1", 32, 24, 128, 0)
    assert mask.header.frame_id == depth.header.frame_id == dets.header.frame_id == "cam_d"
    assert (dets.image_width, dets.image_height, dets.model_id) == (32, 24, manifest.model_id)
    ros.wait_for(lambda: seg_names and det_names, 10, "the latched class names")
    assert [c.class_name for c in seg_names[-1].class_map] == list(manifest.task("segmentation").classes)
    assert [c.class_id for c in det_names[-1].class_map] == [0, 1, 2, 3]
    # Live equals the in-process pipeline (one code path: mtl_split_core.runtime).
    offline = {t: r.in_source(manifest.input, 64, 48, scale=0.5)
               for t, r in run_offline(EdgeModel(dense_bundle), ServerModel(dense_bundle), [rgb])[0].items()
               if manifest.task(t).dense}
    np.testing.assert_array_equal(image_array(mask), offline["segmentation"])
    np.testing.assert_allclose(image_array(depth), offline["depth"], rtol=1e-5)
    expected = offline["detection"]
    assert len(dets.detections) == len(expected)
    for d, box, c, s in zip(dets.detections, expected.xyxy, expected.classes, expected.scores):
        assert d.class_id == c and d.class_name == manifest.task("detection").classes[c]
        np.testing.assert_allclose([d.center_x, d.center_y, d.size_x, d.size_y],
                                   [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]],
                                   rtol=1e-4, atol=1e-3)
        assert d.score == pytest.approx(s, rel=1e-5)
    # The annotated frame: exactly the core's drawing of these results, brought to the 64x48 frame.
    ros.wait_for(lambda: got(annotated) and got(results), 30, "the annotated frame", tick=lambda: pub.publish(msg),
                 tick_every=0.5)
    drawn = got(annotated)
    assert (drawn.encoding, drawn.width, drawn.height) == ("rgb8", 64, 48)
    notes = Annotations(
        lines=[classification_line(p.task, p.class_name, p.score) for p in got(results).predictions],
        masks=[resample(image_array(mask), (32, 24), (64, 48))], depth=resample(image_array(depth), (32, 24), (64, 48)),
        boxes=[(resample(detections_boxes(dets), (32, 24), (64, 48)), manifest.task("detection").classes)])
    assert np.array_equal(np.frombuffer(bytes(drawn.data), np.uint8).reshape(48, 64, 3), annotate(rgb, notes))
    # dense_grid model, set at runtime: the heads' own 32x32 grid, no resampling.
    grid = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="model")
    reply = ros.call(SetParameters, "/mtl_split_server/set_parameters",
                     SetParameters.Request(parameters=[Parameter(name="dense_grid", value=grid)]))
    assert reply.results[0].successful, reply.results[0].reason
    masks.clear()
    boxes.clear()  # (frames in flight may still come on the 32x24 camera grid)
    on_model = (lambda m: m.height == 32), (lambda d: d.image_height == 32)
    ros.wait_for(lambda: any(map(on_model[0], masks)) and any(map(on_model[1], boxes)), 30,
                 "a mask and detections on the model's grid", tick=lambda: pub.publish(msg), tick_every=0.5)
    heads = run_offline(EdgeModel(dense_bundle), ServerModel(dense_bundle), [rgb])[0]
    assert next(filter(on_model[0], masks)).width == 32
    np.testing.assert_array_equal(image_array(next(filter(on_model[0], masks))), heads["segmentation"].value)
    np.testing.assert_allclose(detections_boxes(next(filter(on_model[1], boxes))).xyxy, heads["detection"].value.xyxy,
                               atol=1e-3)


def test_vision_msgs_detections_where_vision_msgs_imports():
    from mtl_split_core.bundle import TaskSpec
    from mtl_split_core.dense import Boxes
    from mtl_split_ros.dense_results import detections_message, vision_detections, vision_msgs

    module = vision_msgs()
    if module is None:
        pytest.skip("vision_msgs does not import here (no wheel on PyPI); it is tested on a ROS install")
    from std_msgs.msg import Header

    ours = detections_message(Boxes([[2, 4, 12, 8]], [1], [0.7]), TaskSpec("d", ("a", "b"), "detection"),
                              Header(frame_id="cam"), "m", (32, 32))
    theirs = vision_detections(module, ours)
    [det] = theirs.detections
    assert (det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x, det.bbox.size_y) == (7, 6, 10, 4)
    assert det.results[0].hypothesis.class_id == "b" and theirs.header.frame_id == "cam"


def test_evaluate_scores_dense_tasks_and_live_equals_offline(tmp_path, dense_bundle):
    from mtl_split_training.datasets import DataOptions, open_data
    from mtl_split_tools.bags import write_bag
    from mtl_split_tools.evaluate import EvalOptions, evaluate

    src = open_data("scenes", DataOptions(size=48, test_size=12, tasks=("shape", "segmentation", "depth", "detection")))
    split = src.split("test")
    write_bag(tmp_path / "bag", (split.sample(i) for i in range(12)), {t.name: list(t.classes) for t in src.tasks},
              30.0)
    live = evaluate(EvalOptions(bundle=dense_bundle, bag=tmp_path / "bag", out=tmp_path / "live", rate=None))
    offline = evaluate(EvalOptions(bundle=dense_bundle, bag=tmp_path / "bag", out=tmp_path / "off", offline=True))
    assert live["frames"]["received"] == 12
    for report in (live, offline):
        assert {"miou", "pixel_accuracy", "iou"} <= set(report["tasks"]["segmentation"])
        assert {"abs_rel", "rmse_m", "delta1"} <= set(report["tasks"]["depth"])
        assert {"map", "map50"} <= set(report["tasks"]["detection"])
        assert report["tasks"]["segmentation"]["frames"] == 12
    assert live["predictions"] == offline["predictions"]
    for task, keys in {"segmentation": ("miou", "pixel_accuracy"), "depth": ("abs_rel", "rmse_m", "delta1"),
                       "detection": ("map", "map50", "detections")}.items():
        for k in keys:
            assert live["tasks"][task][k] == pytest.approx(offline["tasks"][task][k], rel=1e-5), (task, k)
    assert "| segmentation | segmentation | 12 / 12 | miou" in (tmp_path / "live" / "summary.md").read_text()
    from mtl_split_tools.bag_reading import read_frames
    from mtl_split_tools.dense_figure import dense_figure

    png = dense_figure(dense_bundle, read_frames(tmp_path / "bag").frames, tmp_path / "dense.png", count=2)
    assert png.stat().st_size > 10_000
