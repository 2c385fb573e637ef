"""`mtl-split evaluate` on bags as robots record them: any image topic among other topics
(including message types nobody here knows), raw or compressed, any resolution, no labels;
labels from a sidecar table; label sets for another model refused in one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from mtl_split_core.runtime import EdgeModel, ServerModel, run_offline
from mtl_split_tools.bag_reading import read_frames
from mtl_split_tools.bags import BagError, write_bag
from mtl_split_tools.evaluate import EvalOptions, evaluate
from mtl_split_tools.labels import LabelError, parse_stamp

import helpers
from helpers import shapes_classes

TASKS = ("shape", "scale")
START_NS = 1_700_000_000_123_456_789
ROBOT_MSG = "robot_msgs/msg/Odometry2"  # a type only the robot's own packages define


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from mtl_split_training.testing import make_tiny_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    make_tiny_bundle(out, tasks=TASKS, size=32)
    return out


def robot_bag(path: Path, images: list[np.ndarray], topic: str = "/front/image_raw", compressed: bool = False,
              storage: str = "mcap", extra_cameras: tuple[str, ...] = (), stamps: list[int] | None = None) -> Path:
    """A bag like `ros2 bag record -a` on a robot: bgr8 camera frames (or JPEGs), odometry of
    an unknown type, strings, and maybe more cameras."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("float64 x\nfloat64 y\nstring note", ROBOT_MSG))
    Image, Compressed = store.types["sensor_msgs/msg/Image"], store.types["sensor_msgs/msg/CompressedImage"]
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Writer(path, version=9, storage_plugin=plugin) as w:
        msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        cams = {t: w.add_connection(t, msgtype, typestore=store) for t in (topic, *extra_cameras)}
        odom = w.add_connection("/odom", ROBOT_MSG, typestore=store)
        chatter = w.add_connection("/rosout_text", "std_msgs/msg/String", typestore=store)
        for i, rgb in enumerate(images):
            ns = stamps[i] if stamps is not None else START_NS + i * 50_000_000
            log_ns = START_NS + i * 50_000_000 + 7
            header = Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="front_camera")
            bgr = np.ascontiguousarray(rgb[..., ::-1])
            if compressed:
                msg = Compressed(header=header, format="bgr8; jpeg compressed bgr8",
                                 data=cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].reshape(-1))
            else:
                h, wd, _ = bgr.shape
                msg = Image(header=header, height=h, width=wd, encoding="bgr8", is_bigendian=0, step=wd * 3,
                            data=bgr.reshape(-1))
            for conn in cams.values():
                w.write(conn, log_ns, store.serialize_cdr(msg, msgtype))
            w.write(odom, log_ns + 1, store.serialize_cdr(store.types[ROBOT_MSG](x=i, y=0.5, note="ok"), ROBOT_MSG))
            w.write(chatter, log_ns + 2, store.serialize_cdr(store.types["std_msgs/msg/String"](data="hi"),
                                                             "std_msgs/msg/String"))
    return path


def _images(n: int = 20) -> list[np.ndarray]:
    """Frames of an odd camera size (40x30), not the model's 32x32."""
    return helpers.frames(n, seed=7)


@pytest.mark.parametrize("storage, compressed", [("mcap", False), ("sqlite3", True)])
def test_unlabelled_robot_bag_reports_what_the_model_predicts(tmp_path, bundle, storage, compressed):
    images = _images()
    bag = robot_bag(tmp_path / "robot", images, compressed=compressed, storage=storage)
    report = evaluate(EvalOptions(bundle=bundle, bag=bag, out=tmp_path / "rep", offline=True))
    assert report["camera_topic"] == "/front/image_raw" and report["image_size"] == [40, 30]
    assert report["other_topics"] == {"/odom": ROBOT_MSG, "/rosout_text": "std_msgs/msg/String"}
    assert report["frames"] == {"sent": 20, "received": 20, "dropped": 0, "foreign": 0}
    # What the bundle says about these frames, computed independently from the same pixels.
    frames = read_frames(bag).frames
    from mtl_split_tools.evaluate import _rgb

    preds = run_offline(EdgeModel(bundle), ServerModel(bundle), [_rgb(f) for f in frames])
    for task in TASKS:
        m = report["tasks"][task]
        assert m["labelled_frames"] == 0 and m["predicted_frames"] == 20 and "accuracy" not in m
        names = [p[task].class_name for p in preds]
        order = shapes_classes()[task]
        assert m["predictions"]["histogram"] == {n: names.count(n) for n in sorted(set(names), key=order.index)}
        assert m["predictions"]["mean_score"] == pytest.approx(np.mean([p[task].score for p in preds]), abs=1e-4)
    assert report["latency_ms"]["end_to_end"]["p50"] > 0 and report["fps"] > 0
    assert report["bytes_per_frame"]["raw_image"] == 40 * 30 * 3
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "| shape | classification | 0 / 20 | - | - |" in summary
    assert (tmp_path / "rep" / "predictions.png").stat().st_size > 1000
    assert not (tmp_path / "rep" / "accuracy.png").exists()


def test_camera_topic_is_chosen_or_the_error_lists_the_candidates(tmp_path, bundle):
    bag = robot_bag(tmp_path / "two", _images(4), extra_cameras=("/rear/image_raw",))
    with pytest.raises(BagError, match=r"2 image topics \(/front/image_raw, /rear/image_raw\); choose one with "
                                       r"--camera-topic"):
        read_frames(bag)
    assert read_frames(bag, "/rear/image_raw").camera_topic == "/rear/image_raw"
    with pytest.raises(BagError, match="no camera topic /left/image_raw .*image topics: /front/image_raw, /rear"):
        read_frames(bag, "/left/image_raw")
    compressed = robot_bag(tmp_path / "jpeg", _images(4), topic="/front/image_raw/compressed", compressed=True)
    # The base name finds its /compressed twin, as image_transport names it.
    assert read_frames(compressed, "/front/image_raw").camera_topic == "/front/image_raw/compressed"
    r = subprocess.run([sys.executable, "-m", "mtl_split_tools.cli", "evaluate", "--offline", "--bundle", str(bundle),
                        "--bag", str(bag), "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--camera-topic" in r.stderr, r.stderr


def test_limit_reads_only_the_first_frames_and_repeated_stamps_are_replaced(tmp_path):
    bag = robot_bag(tmp_path / "zero", _images(6), stamps=[0] * 6)  # a driver that never stamps
    read = read_frames(bag, limit=4)
    assert read.restamped and len(read.frames) == 4
    stamps = [f.stamp_ns for f in read.frames]
    assert stamps == [START_NS + i * 50_000_000 + 7 for i in range(4)]  # the record times
    from mtl_split_tools.bags import decode_frame
    from mtl_split_core.stamps import to_ns

    assert [to_ns(decode_frame(f).header.stamp) for f in read.frames] == stamps  # in the message itself


def _labelled_bag(path: Path, n: int = 16) -> tuple[Path, list[dict[str, int]]]:
    from mtl_split_training.datasets import iter_labelled_images

    samples = list(iter_labelled_images("shapes", 32, tasks=TASKS, limit=n))
    write_bag(path, iter(samples), shapes_classes(), rate_hz=20, start_ns=START_NS)
    return path, [labels for _, labels in samples]


def test_sidecar_labels_by_frame_or_stamp_score_like_the_bags_own(tmp_path, bundle):
    bag, labels = _labelled_bag(tmp_path / "bag")
    own = evaluate(EvalOptions(bundle=bundle, bag=bag, out=tmp_path / "own", offline=True))
    classes = shapes_classes()
    by_frame = tmp_path / "by_frame.csv"
    by_frame.write_text("frame,shape,notes\n" + "".join(f"{i},{classes['shape'][l['shape']]},x\n"
                                                        for i, l in enumerate(labels)))
    # Stamps as seconds with nine decimals in a TSV, and one frame left unlabelled.
    by_stamp = tmp_path / "by_stamp.tsv"
    by_stamp.write_text("stamp\tscale\n" + "".join(
        f"{(START_NS + i * 50_000_000) // 10**9}.{(START_NS + i * 50_000_000) % 10**9:09d}\t"
        f"{classes['scale'][l['scale']] if i else ''}\n" for i, l in enumerate(labels)))
    for sidecar, task, expected_frames in [(by_frame, "shape", 16), (by_stamp, "scale", 15)]:
        rep = evaluate(EvalOptions(bundle=bundle, bag=bag, out=tmp_path / sidecar.stem, offline=True, labels=sidecar))
        assert rep["labels"]["tasks"][task] == "sidecar"
        m = rep["tasks"][task]
        assert m["labelled_frames"] == expected_frames
        if sidecar == by_frame:
            assert m["confusion"] == own["tasks"][task]["confusion"]
            assert "notes" in " ".join(rep["labels"]["notes"])  # a column that is no task is noted
        else:
            assert sum(map(sum, m["confusion"])) == 15
    assert parse_stamp("1700000000.5") == 1_700_000_000_500_000_000 and parse_stamp("12") == 12
    with pytest.raises(LabelError, match="whole number"):
        parse_stamp("1.0000000001")


def test_sidecar_on_an_unlabelled_bag_and_its_errors(tmp_path, bundle):
    bag = robot_bag(tmp_path / "robot", _images(8))
    classes = shapes_classes()
    good = tmp_path / "labels.csv"
    good.write_text("frame,shape\n" + "".join(f"{i},{classes['shape'][i % 4]}\n" for i in range(8)))
    rep = evaluate(EvalOptions(bundle=bundle, bag=bag, out=tmp_path / "rep", offline=True, labels=good))
    assert rep["tasks"]["shape"]["labelled_frames"] == 8 and "accuracy" in rep["tasks"]["shape"]
    assert rep["tasks"]["scale"]["labelled_frames"] == 0
    for text, message in [("frame,shape\n99,cube\n", "none of its 1 rows matches a frame"),
                          ("index,shape\n0,cube\n", "needs exactly one of the columns 'frame'"),
                          ("frame,shape\nx,cube\n", "'x' is not a frame index"),
                          ("frame,shape\n0,cube\n0,sphere\n", "a second row for frame 0")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(LabelError, match=message):
            evaluate(EvalOptions(bundle=bundle, bag=bag, out=tmp_path / "bad", offline=True, labels=bad))


def test_labels_for_another_model_fail_in_one_line(tmp_path, bundle):
    """A bag whose `shape` labels are cat/dog, against a bundle whose shapes are cube/sphere/...:
    one line naming the classes, not a meaningless accuracy."""
    from mtl_split_training.datasets import iter_labelled_images

    samples = [(im, {"shape": i % 2}) for i, (im, _) in enumerate(iter_labelled_images("shapes", 32, limit=6))]
    bag = tmp_path / "pets"
    write_bag(bag, iter(samples), {"shape": ["cat", "dog"]}, rate_hz=10)
    r = subprocess.run([sys.executable, "-m", "mtl_split_tools.cli", "evaluate", "--offline", "--bundle", str(bundle),
                        "--bag", str(bag), "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "'cat', 'dog'" in r.stderr and "for another model" in r.stderr and "'cube'" in r.stderr
    assert not (tmp_path / "r" / "report.json").exists()
    # Labels of tasks the bundle lacks are no error: they are noted and left out.
    samples = [(im, {"colour": i % 2}) for i, (im, _) in enumerate(iter_labelled_images("shapes", 32, limit=4))]
    write_bag(tmp_path / "other", iter(samples), {"colour": ["red", "blue"]}, rate_hz=10)
    rep = evaluate(EvalOptions(bundle=bundle, bag=tmp_path / "other", out=tmp_path / "o", offline=True))
    assert "colour" in rep["labels"]["notes"][0] and rep["tasks"]["shape"]["labelled_frames"] == 0
