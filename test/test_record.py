"""`evaluate --record`: an MCAP bag of what the live pipeline said, which readers that have
never seen our package decode from the definitions stored in it (rosbags with an empty type
store, Foxglove's mcap-ros2 decoder), and which evaluate reads back with the same answers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from mtl_split_core.annotate import Annotations, annotate, classification_line
from mtl_split_tools.bags import write_bag
from mtl_split_tools.evaluate import EvalOptions, evaluate

from helpers import shapes_classes

pytestmark = pytest.mark.ros
TASKS = ("shape", "scale")
FRAMES = 20


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_bundle) -> tuple[Path, dict, Path]:
    from mtl_split_training.datasets import iter_labelled_images

    root = tmp_path_factory.mktemp("record")
    bag = root / "bag"
    write_bag(bag, iter_labelled_images("shapes", 32, tasks=TASKS, limit=FRAMES), shapes_classes(), rate_hz=30,
              storage="sqlite3")
    report = evaluate(EvalOptions(bundle=tiny_bundle, bag=bag, out=root / "live", rate=None, record=root / "rec"))
    return root / "rec", report, bag


def test_the_recording_holds_every_topic_of_every_frame(recorded):
    rec, report, _ = recorded
    assert report["frames"]["received"] == FRAMES
    counts = {"/camera/image_raw": FRAMES, "/mtl_split/ground_truth": FRAMES, "/mtl_split/features": FRAMES,
              "/mtl_split/results": FRAMES, "/mtl_split/results/shape": FRAMES, "/mtl_split/results/scale": FRAMES,
              "/mtl_split/annotated": FRAMES, "/mtl_split/backbone_info": 1}
    assert report["recording"]["messages"] == counts, report["node_counters"]
    with Reader(rec) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == counts
        assert all(c.msgdef.format.name == "MSG" and c.msgdef.data for c in reader.connections)
        assert list(rec.glob("*.mcap"))


def test_readers_without_our_package_decode_it_from_the_file_alone(recorded):
    rec, _, _ = recorded
    decoded = {}
    with Reader(rec) as reader:  # rosbags with an empty type store: only what the file says
        for conn, _, raw in reader.messages():
            store = get_typestore(Stores.EMPTY)
            store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
            decoded.setdefault(conn.topic, []).append(store.deserialize_cdr(raw, conn.msgtype))
    results = decoded["/mtl_split/results"]
    assert {p.task for p in results[0].predictions} == set(TASKS)
    import hashlib

    model_id = decoded["/mtl_split/backbone_info"][0].model_id
    fingerprint = bytes(decoded["/mtl_split/features"][0].model_fingerprint)
    assert fingerprint == hashlib.sha256(model_id.encode()).digest()[:8] and model_id == results[0].model_id
    # Foxglove's decoder (the mcap-ros2-support library Foxglove publishes) reads every message.
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    [mcap_file] = rec.glob("*.mcap")
    with open(mcap_file, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        n = sum(1 for _ in reader.iter_decoded_messages())
    assert n == sum(len(v) for v in decoded.values())
    # The annotated image of a frame is the core's drawing of that frame's recorded results.
    frames = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in decoded["/camera/image_raw"]}
    by_stamp = {(r.header.stamp.sec, r.header.stamp.nanosec): r for r in results}
    for image in decoded["/mtl_split/annotated"][:3]:
        k = (image.header.stamp.sec, image.header.stamp.nanosec)
        rgb = np.asarray(frames[k].data).reshape(32, 32, 3)
        lines = [classification_line(p.task, p.class_name, p.score) for p in by_stamp[k].predictions]
        assert np.array_equal(np.asarray(image.data).reshape(32, 32, 3), annotate(rgb, Annotations(lines=lines)))


def test_a_recording_is_evaluated_again_with_the_same_answers(recorded, tiny_bundle, tmp_path):
    rec, live, _ = recorded
    again = evaluate(EvalOptions(bundle=tiny_bundle, bag=rec, out=tmp_path / "again", offline=True))
    assert again["camera_topic"] == "/camera/image_raw"  # the only camera: results and drawings are not
    assert again["predictions"] == live["predictions"]
    for task in TASKS:
        assert again["tasks"][task]["labelled_frames"] == FRAMES
        assert again["tasks"][task]["confusion"] == live["tasks"][task]["confusion"]


def test_record_refuses_offline_and_an_existing_output(recorded, tiny_bundle, tmp_path):
    from mtl_split_core.errors import MtlSplitError

    rec, _, bag = recorded
    with pytest.raises(MtlSplitError, match="drop --offline"):
        evaluate(EvalOptions(bundle=tiny_bundle, bag=bag, out=tmp_path / "o", offline=True, record=tmp_path / "r"))
    with pytest.raises(MtlSplitError, match="exists"):
        evaluate(EvalOptions(bundle=tiny_bundle, bag=bag, out=tmp_path / "o", record=rec))
