"""Entropy and temporal coding through the real nodes: the edge's key and delta frames give
the offline results; after a dropped and after a reordered delta frame the server publishes
no wrong result, resyncs at the next keyframe and counts what it dropped; skip frames get
the previous results again, marked repeated; a peer of schema 1 is refused with the reason."""
from __future__ import annotations

import time

import numpy as np
import pytest

from mtl_split_core import codec
from mtl_split_core.bundle import load_manifest
from mtl_split_core.runtime import EdgeModel, ServerModel

pytestmark = pytest.mark.ros

SERVER = "/mtl_split_server"
KEYFRAME_INTERVAL = 5


@pytest.fixture(scope="module")
def entropy_bundle(tmp_path_factory):
    testing = pytest.importorskip("mtl_split_training.testing", reason="building a bundle needs torch/timm")
    out = tmp_path_factory.mktemp("bundle") / "entropy"
    testing.make_tiny_bundle(out, size=32, bottleneck=4, entropy=True)
    return out


def clip(n: int):
    from mtl_split_training.datasets.shapes_clips import render_clip

    return render_clip(32, n, "camera", seed=5, deg_per_frame=0.5).frames


def image_msg(rgb: np.ndarray, frame_id: str, stamp_ns: int):
    from sensor_msgs.msg import Image

    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(rgb).tobytes()
    msg.header.frame_id, msg.header.stamp.nanosec = frame_id, stamp_ns
    return msg


def stamp_of(header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


class Harness:
    def __init__(self, ros, launcher, bundle):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from mtl_split.msg import BackboneInfo, MultiTaskResult, SharedFeatures
        from mtl_split_ros.qos import LATCHED

        self.ros, self.bundle, self.manifest = ros, bundle, load_manifest(bundle)
        self.server = launcher.node("server", {
            "bundle": str(bundle), "discover": False, "discovery_period_s": 0.5, "diagnostics_period_s": 0.5,
            "max_batch": 1, "features_topics": ["/tt/mtl_split/features", "/tv/mtl_split/features",
                                                "/te/mtl_split/features"]})
        self.edge = launcher.node("edge", {"bundle": str(bundle), "diagnostics_period_s": 0.5,
                                           "keyframe_interval": KEYFRAME_INTERVAL,
                                           "image_topics": ["/te/camera/image_raw"]}, namespace="/te")
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.features_pub = ros.node.create_publisher(SharedFeatures, "/tt/mtl_split/features", reliable)
        self.v1_pub = ros.node.create_publisher(SharedFeatures, "/tv/mtl_split/features", reliable)
        self.v1_info = ros.node.create_publisher(BackboneInfo, "/tv/mtl_split/backbone_info", LATCHED)
        from sensor_msgs.msg import Image

        self.camera = ros.node.create_publisher(Image, "/te/camera/image_raw", 10)
        self.results = {ns: ros.collect(MultiTaskResult, f"/{ns}/mtl_split/results", 100) for ns in ("tt", "te")}
        self.edge_features = ros.collect(SharedFeatures, "/te/mtl_split/features", 100)
        self.diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 100)

    def diag(self, node_fqn: str = SERVER) -> dict[str, str]:
        for array_msg in reversed(self.diagnostics):
            for status in array_msg.status:
                if status.name == f"mtl_split: {node_fqn}":
                    return {kv.key: kv.value for kv in status.values}
        return {}


@pytest.fixture(scope="module")
def harness(ros, launcher, entropy_bundle):
    return Harness(ros, launcher, entropy_bundle)


def assert_result(result, features: np.ndarray, server: ServerModel) -> None:
    ref = server.predict(features[None])[0]
    for p in result.predictions:
        assert p.class_id == ref[p.task].class_id
        np.testing.assert_allclose(np.frombuffer(p.scores, np.float32), ref[p.task].scores, rtol=1e-6, atol=1e-7)


def test_edge_sends_key_and_delta_frames_with_offline_results(harness):
    frames = clip(12)
    offline_edge = EdgeModel(harness.bundle, threads=1, keyframe_interval=KEYFRAME_INTERVAL)
    offline_server = ServerModel(harness.bundle, threads=1)
    for i, rgb in enumerate(frames):  # one at a time: the edge codes each against the previous one
        msg = image_msg(rgb, "cam_t", stamp_ns=1_000_000 + i)
        harness.ros.wait_for(lambda: any(stamp_of(r.header) == stamp_of(msg.header) for r in harness.results["te"]),
                             60, f"the result of frame {i}", tick=lambda: harness.camera.publish(msg), tick_every=1.0)
    wanted = {(0, 1_000_000 + i) for i in range(len(frames))}  # our copy of the features may trail the results
    harness.ros.wait_for(lambda: wanted <= {stamp_of(f.header) for f in harness.edge_features}, 20,
                         "every frame's features")
    # On a slow machine a frame may have been published again before its result came back:
    # the edge then coded it twice (the second time as a skip frame). Code offline exactly the
    # frames the edge received, in its order.
    sent = [f for f in harness.edge_features if stamp_of(f.header) in wanted]
    order = [stamp_of(f.header)[1] - 1_000_000 for f in sent]
    results = {stamp_of(r.header): r for r in harness.results["te"]}
    encoded = offline_edge([frames[i] for i in order], ["cam_t"] * len(order))
    kinds = []
    for i, live_msg, enc in zip(order, sent, encoded):
        live = codec.from_message(live_msg)
        kinds.append(live.frame)
        assert bytes(live.data) == enc.data and live.frame == enc.frame  # bit-exact across processes
        assert_result(results[(0, 1_000_000 + i)], offline_server.decode(enc, "cam_t"), offline_server)
    assert kinds.count("key") >= 12 // KEYFRAME_INTERVAL and "delta" in kinds


@pytest.mark.parametrize("fault", ["drop", "reorder"])
def test_lost_or_reordered_delta_frames_resync_at_the_next_keyframe(harness, fault):
    from mtl_split.msg import SharedFeatures

    frames = clip(15)
    edge = EdgeModel(harness.bundle, threads=1, keyframe_interval=KEYFRAME_INTERVAL)
    reference = ServerModel(harness.bundle, threads=1)
    encoded = edge(frames, ["cam"] * len(frames))
    kinds = [e.frame for e in encoded]  # keyframes come by interval, and wherever a delta would not be smaller
    runs = [j for j in range(1, len(kinds) - 1) if kinds[j] != "key" and kinds[j + 1] != "key"]
    assert kinds[0] == "key" and runs, f"the clip needs two delta frames in a row: {kinds}"
    j = runs[0] if fault == "drop" else runs[-1]
    next_key = next((i for i in range(j + 1, len(kinds)) if kinds[i] == "key"), len(kinds))
    features = [reference.decode(e, "ref") for e in encoded]  # what each frame really is
    base = 2_000_000 if fault == "drop" else 3_000_000
    msgs = []
    for i, enc in enumerate(encoded):
        m = codec.to_message(enc, SharedFeatures())
        m.header.frame_id = f"cam_{fault}"
        m.header.stamp.nanosec = base + i
        m.model_fingerprint = np.frombuffer(codec.fingerprint(harness.manifest.model_id), np.uint8)
        msgs.append(m)
    order = list(range(15))
    if fault == "drop":
        del order[j]  # a delta frame never arrives: what refers to it until the next keyframe is dropped
        dropped = set(range(j + 1, next_key))
    else:
        order[j], order[j + 1] = order[j + 1], order[j]  # two delta frames swapped: both and the rest until
        dropped = set(range(j, next_key))  # the next keyframe are dropped
    harness.ros.wait_for(lambda: harness.features_pub.get_subscription_count() > 0, 30, "the server to subscribe")
    harness.ros.spin_for(0.5)
    before = int(harness.diag().get("dropped.resync", 0))
    for i in order:
        harness.features_pub.publish(msgs[i])
        harness.ros.spin_for(0.05)
    want = set(order) - dropped
    got = lambda: {s[1] - base for s in map(lambda r: stamp_of(r.header), harness.results["tt"])  # noqa: E731
                   if base <= s[1] < base + 15}
    harness.ros.wait_for(lambda: got() >= want, 30, f"results of frames {sorted(want)}")
    harness.ros.wait_for(lambda: int(harness.diag().get("dropped.resync", 0)) >= before + len(dropped), 10,
                         "the server to count the frames it dropped")
    harness.ros.spin_for(1.0)
    assert got() == want  # nothing for the frames without their reference
    assert int(harness.diag()["dropped.resync"]) == before + len(dropped)
    for r in harness.results["tt"]:
        i = stamp_of(r.header)[1] - base
        if 0 <= i < 15:
            assert_result(r, features[i], reference)  # never a wrong result
    assert harness.server.alive


def test_skip_frames_publish_the_previous_results_marked_repeated(harness):
    """A camera that stops: the edge (lossy, dead zone 2) sends skip frames with no payload;
    the server publishes the previous frame's results again, marked repeated, and counts them."""
    from mtl_split.msg import SharedFeatures

    frames = clip(4)
    frames += [frames[-1]] * 4
    edge = EdgeModel(harness.bundle, threads=1, keyframe_interval=100, dead_zone=2)
    reference = ServerModel(harness.bundle, threads=1)
    encoded = edge(frames, ["cam"] * len(frames))
    kinds = [e.frame for e in encoded]
    assert kinds[0] == "key" and kinds[4:] == ["skip"] * 4
    features = [reference.decode(e, "ref") for e in encoded]
    base = 4_000_000
    harness.ros.wait_for(lambda: harness.features_pub.get_subscription_count() > 0, 30, "the server to subscribe")
    before = int(harness.diag().get("frames_repeated", 0))
    for i, enc in enumerate(encoded):
        m = codec.to_message(enc, SharedFeatures())
        m.header.frame_id, m.header.stamp.nanosec = "cam_skip", base + i
        m.model_fingerprint = np.frombuffer(codec.fingerprint(harness.manifest.model_id), np.uint8)
        # A skip frame's data is the camera frame's size alone.
        assert enc.frame != "skip" or len(codec.from_message(m).data) == 0 < len(m.data) <= 6
        harness.features_pub.publish(m)
        harness.ros.spin_for(0.05)
    got = lambda: {stamp_of(r.header)[1] - base: r for r in harness.results["tt"]  # noqa: E731
                   if base <= stamp_of(r.header)[1] < base + len(frames)}
    harness.ros.wait_for(lambda: len(got()) == len(frames), 30, "a result for every frame, skipped ones too")
    harness.ros.wait_for(lambda: int(harness.diag().get("frames_repeated", 0)) >= before + 4, 10,
                         "the server to count the repeated results")
    for i, r in got().items():
        assert r.repeated == (kinds[i] == "skip")
        assert_result(r, features[i], reference)
        if r.repeated:
            assert [p.class_id for p in r.predictions] == [p.class_id for p in got()[i - 1].predictions]


def test_schema_1_peer_is_refused_with_the_reason(harness):
    from mtl_split.msg import BackboneInfo, SharedFeatures

    info = BackboneInfo(schema_version=1, model_id=harness.manifest.model_id, backbone="x")
    old = codec.to_message(codec.encode(np.zeros(harness.manifest.features.shape, np.float32), "float32"),
                           SharedFeatures())
    old.schema_version = 1
    old.model_fingerprint = np.frombuffer(codec.fingerprint(harness.manifest.model_id), np.uint8)
    deadline = time.monotonic() + 30
    harness.ros.wait_for(lambda: int(harness.diag().get("errors.schema_mismatch", 0)) >= 2 or
                         time.monotonic() > deadline, 40, "the server to refuse schema 1",
                         tick=lambda: (harness.v1_info.publish(info), harness.v1_pub.publish(old)), tick_every=0.5)
    log = harness.server.log(300)
    assert "schema 1" in log and "schema_version 1" in log and "same mtl_split release" in log
    assert int(harness.diag()["errors.schema_mismatch"]) >= 2 and harness.server.alive
