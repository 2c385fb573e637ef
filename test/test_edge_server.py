"""Edge and server nodes as real processes over DDS, driven from an rclpy node here.

One pipeline for the module: a server that discovers robots, edge A (one raw camera,
remapped) in /robot_a, edge B (a compressed camera and a raw one, batched) in /robot_b.
Each test checks its own frames, so the order of the tests does not matter.
"""
from __future__ import annotations

import array
import dataclasses

import numpy as np
import pytest

from mtl_split_core import codec
from mtl_split_core.bundle import load_manifest
from mtl_split_core.imaging import to_array
from mtl_split_core.runtime import EdgeModel, ServerModel, run_offline

from helpers import compressed_msg, frames, image_msg, key, stamp


class Pipeline:
    def __init__(self, ros, launcher, bundle):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CompressedImage, Image

        from mtl_split.msg import MultiTaskResult, SharedFeatures

        self.ros, self.bundle = ros, bundle
        self.manifest = load_manifest(bundle)
        # A generous max_wait_ms: frames of several cameras meet in one batch even on a loaded machine.
        self.server = launcher.node("server", {"bundle": str(bundle), "discovery_period_s": 0.5,
                                               "diagnostics_period_s": 0.5, "max_wait_ms": 100})
        self.edge_a = launcher.node("edge", {"bundle": str(bundle), "diagnostics_period_s": 0.5},
                                    namespace="/robot_a", remaps={"/camera/image_raw": "/robot_a/camera/image_raw"})
        self.edge_b = launcher.node("edge", {
            "bundle": str(bundle), "diagnostics_period_s": 0.5,
            "image_topics": ["camera/image_raw/compressed", "camera2/image_raw"]}, namespace="/robot_b")
        node = ros.node
        self.pub = {
            "a": node.create_publisher(Image, "/robot_a/camera/image_raw", 10),
            "b": node.create_publisher(CompressedImage, "/robot_b/camera/image_raw/compressed", 10),
            "b2": node.create_publisher(Image, "/robot_b/camera2/image_raw", 10),
        }
        self.results = {ns: ros.collect(MultiTaskResult, f"/{ns}/mtl_split/results") for ns in ("robot_a", "robot_b")}
        self.features = ros.collect(SharedFeatures, "/robot_a/mtl_split/features")
        self.diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 100)
        # Every node and every subscription of ours discovered: a frame per camera goes through
        # and robot A's features reach us too.
        warm = frames(1, seed=0)[0]
        self.send("b", compressed_msg(warm, "cam_b"), "robot_b", timeout=60)
        self.send("b2", image_msg(warm, "cam_b2"), "robot_b", timeout=60)
        msg = image_msg(warm, "cam_a")
        ros.wait_for(lambda: any(key(f.header) == key(msg.header) for f in self.features), 60,
                     "robot A's features to reach the test", tick=lambda: self.pub["a"].publish(msg), tick_every=0.5)

    def send(self, pub: str, msg, ns: str, timeout: float = 30.0):
        """Publish until the result for msg arrives (the first frames may meet a pipeline
        still discovering itself); return that result."""
        want = key(msg.header)

        def result():
            return next((r for r in self.results[ns] if key(r.header) == want), None)
        return self.ros.wait_for(result, timeout, f"the result of frame {want} in /{ns}",
                                 tick=lambda: self.pub[pub].publish(msg), tick_every=0.5)

    def diag(self, node_fqn: str) -> dict[str, str]:
        """Newest diagnostics values of one node."""
        from mtl_split_ros.diagnostics import status_node

        for array_msg in reversed(self.diagnostics):
            for status in array_msg.status:
                if status_node(status.name) == node_fqn:
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def wait_count(self, node_fqn: str, key_: str, at_least: int, timeout: float = 15.0) -> int:
        return self.ros.wait_for(lambda: int(self.diag(node_fqn).get(key_, 0)) >= at_least and
                                 int(self.diag(node_fqn)[key_]), timeout, f"{node_fqn} {key_} >= {at_least}")


@pytest.fixture(scope="module")
def pipeline(ros, launcher, tiny_bundle):
    return Pipeline(ros, launcher, tiny_bundle)


class Offline:
    """The same bundle in this process (runtime.py): the reference for every live result."""

    def __init__(self, bundle):
        self.edge, self.server = EdgeModel(bundle, threads=1), ServerModel(bundle, threads=1)

    def __call__(self, msgs):
        return run_offline(self.edge, self.server, [to_array(m) for m in msgs])


@pytest.fixture(scope="module")
def offline(tiny_bundle):
    return Offline(tiny_bundle)


def assert_same(results, reference, manifest):
    """Same classes and the same probabilities: the computation is identical (batch 1, same
    ONNX Runtime), so only float32 round-off in transport could differ - and there is none."""
    for res, ref in zip(results, reference):
        assert [p.task for p in res.predictions] == manifest.task_names
        for p in res.predictions:
            assert p.class_id == ref[p.task].class_id
            assert p.class_name == ref[p.task].class_name
            np.testing.assert_allclose(np.frombuffer(p.scores, np.float32), ref[p.task].scores, rtol=1e-6, atol=1e-7)


@pytest.mark.ros
def test_results_equal_offline_inference(pipeline, offline):
    msgs = [image_msg(f, "cam_a") for f in frames(6, seed=1)]
    results = [pipeline.send("a", m, "robot_a") for m in msgs]
    assert_same(results, offline(msgs), pipeline.manifest)
    # The untrained tiny model's outputs vary little between frames, so also check each
    # frame's features bit for bit: a mixed-up or mis-converted frame cannot pass this.
    wanted = {key(m.header) for m in msgs}
    pipeline.ros.wait_for(lambda: wanted <= {key(f.header) for f in pipeline.features}, 10, "every frame's features")
    sent = {key(f.header): codec.decode(codec.from_message(f)) for f in pipeline.features}
    reference = offline.edge.features([to_array(m) for m in msgs])
    assert not np.array_equal(reference[0], reference[1])
    for m, ref in zip(msgs, reference):
        np.testing.assert_array_equal(sent[key(m.header)], ref)
    r = results[-1]
    assert r.model_id == pipeline.manifest.model_id
    assert r.batch_size == 1 and r.edge_compute_ms > 0 and r.server_compute_ms > 0
    assert -1000 < r.transport_ms < 1000 and r.queue_ms >= 0


@pytest.mark.ros
def test_two_namespaces_keep_their_results(pipeline):
    a = image_msg(frames(1, seed=2)[0], "cam_a")
    b = image_msg(frames(1, seed=3)[0], "cam_b2")
    ra, rb = pipeline.send("a", a, "robot_a"), pipeline.send("b2", b, "robot_b")
    assert key(ra.header) == key(a.header) and key(rb.header) == key(b.header)
    assert all(key(r.header)[2] == "cam_a" for r in pipeline.results["robot_a"])
    assert all(key(r.header)[2] != "cam_a" for r in pipeline.results["robot_b"])


@pytest.mark.ros
def test_compressed_and_mono8_inputs(pipeline, offline):
    rgb = frames(2, seed=4)
    png = compressed_msg(rgb[0], "cam_b")
    mono = image_msg(rgb[1], "cam_a", encoding="mono8")
    assert_same([pipeline.send("b", png, "robot_b")], offline([png]), pipeline.manifest)
    assert_same([pipeline.send("a", mono, "robot_a")], offline([mono]), pipeline.manifest)
    jpeg = compressed_msg(rgb[0], "cam_b", fmt="jpg")
    assert pipeline.send("b", jpeg, "robot_b").predictions


@pytest.mark.ros
def test_bad_images_are_counted_and_dropped(pipeline):
    good = frames(1, seed=5)[0]
    pipeline.send("a", image_msg(good, "cam_a"), "robot_a")  # the edge is up and matched
    before = int(pipeline.diag("/robot_a/mtl_split_edge").get("errors.bad_image", 0))
    bad = image_msg(good, "cam_a")
    bad.step = 7  # fewer bytes per row than the pixels need
    corrupt = compressed_msg(good, "cam_b", fmt="jpg")
    corrupt.data = corrupt.data[: len(corrupt.data) // 3]
    pipeline.pub["a"].publish(bad)
    pipeline.pub["b"].publish(corrupt)
    pipeline.wait_count("/robot_a/mtl_split_edge", "errors.bad_image", before + 1)
    pipeline.wait_count("/robot_b/mtl_split_edge", "errors.bad_image", 1)
    assert not any(key(r.header) == key(bad.header) for r in pipeline.results["robot_a"])
    # Both edges go on serving good frames.
    pipeline.send("a", image_msg(good, "cam_a"), "robot_a")
    pipeline.send("b", compressed_msg(good, "cam_b"), "robot_b")
    assert pipeline.edge_a.alive and pipeline.edge_b.alive
    assert "step 7" in pipeline.edge_a.log(200)


@pytest.mark.ros
def test_server_drops_foreign_and_truncated_features(pipeline):
    """Truncated frames of this model are counted as bad_payload; another model's frames never
    reach the server (DDS filters them by fingerprint), and their publisher is reported."""
    from mtl_split.msg import SharedFeatures

    shape = pipeline.manifest.features.shape
    enc = codec.encode(np.ones(shape, np.float32), "float32", "zstd")
    # Two robots: with keep-last-1 a second message on one topic could replace the first unseen.
    robot_x = pipeline.ros.node.create_publisher(SharedFeatures, "/robot_x/mtl_split/features", 10)
    robot_z = pipeline.ros.node.create_publisher(SharedFeatures, "/robot_z/mtl_split/features", 10)

    def features(model_id: str, data: bytes) -> SharedFeatures:
        msg = codec.to_message(dataclasses.replace(enc, data=data), SharedFeatures())
        msg.model_fingerprint = np.frombuffer(codec.fingerprint(model_id), np.uint8)
        return stamp(msg, "cam_x")
    foreign = features("mtl-not-this-model", enc.data)
    truncated = features(pipeline.manifest.model_id, enc.data[: len(enc.data) // 2])
    server = "/mtl_split_server"
    mismatches = int(pipeline.diag(server).get("errors.model_mismatch", 0))
    # Re-publish until the server has discovered both robots, counted the bad payloads and
    # reported the publisher whose frames never passed the filter.
    pipeline.ros.wait_for(
        lambda: (int(pipeline.diag(server).get("errors.bad_payload", 0)) >= 2
                 and "/robot_x/mtl_split/features" in pipeline.server.log(400)
                 and "not one of its frames was of this server's model" in pipeline.server.log(400)),
        30, "the server to count bad payloads and report /robot_x's publisher",
        tick=lambda: (robot_x.publish(foreign), robot_z.publish(truncated)), tick_every=0.3)
    pipeline.wait_count(server, "warnings.silent_publisher", 1)
    log = pipeline.server.log(400)
    assert "does not decompress" in log
    counts = pipeline.diag(server)
    assert int(counts.get("errors.model_mismatch", 0)) == mismatches  # filtered before the node: nothing to count
    # Rate-limited: one log line per source and kind (then one per 10 s), every frame counted.
    assert 1 <= log.count("[bad_payload] /robot_z/mtl_split/features") < int(counts["errors.bad_payload"])
    pipeline.send("a", image_msg(frames(1, seed=6)[0], "cam_a"), "robot_a")
    assert pipeline.server.alive


@pytest.mark.ros
def test_heads_nobody_listens_to_are_not_run(pipeline, offline):
    from mtl_split.msg import SharedFeatures, TaskResult

    server = "/mtl_split_server"
    image = to_array(image_msg(frames(1, seed=10)[0], "cam_y"))
    msg = codec.to_message(offline.edge(image[None])[0], SharedFeatures())
    msg.model_fingerprint = np.frombuffer(codec.fingerprint(pipeline.manifest.model_id), np.uint8)
    msg = stamp(msg, "cam_y")
    robot_y = pipeline.ros.node.create_publisher(SharedFeatures, "/robot_y/mtl_split/features", 10)
    before = int(pipeline.diag(server).get("unheard", 0))
    pipeline.ros.wait_for(lambda: int(pipeline.diag(server).get("unheard", 0)) > before, 30,
                          "the server to skip frames nobody listens to",
                          tick=lambda: robot_y.publish(msg), tick_every=0.5)
    task = pipeline.manifest.task_names[-1]
    only = pipeline.ros.collect(TaskResult, f"/robot_y/mtl_split/results/{task}")
    pipeline.ros.wait_for(lambda: only, 20, f"/robot_y/mtl_split/results/{task}",
                          tick=lambda: robot_y.publish(msg), tick_every=0.5)
    assert only[0].prediction.task == task and key(only[0].header) == key(msg.header)
    assert only[0].prediction.class_id == offline.server.predict(offline.edge.features([image]))[0][task].class_id


@pytest.mark.ros
def test_frames_of_robots_and_cameras_share_a_batch(pipeline):
    """Edge B runs its two cameras in one inference; the server runs A's and B's frames in
    one batch of heads; every result still goes to its own namespace and camera."""
    rgb = frames(3, seed=7)
    for _ in range(10):  # the first round makes all three cameras "active" for the batcher
        sent = {"robot_a": [image_msg(rgb[0], "cam_a")],
                "robot_b": [compressed_msg(rgb[1], "cam_b"), image_msg(rgb[2], "cam_b2")]}
        for pub, msg in zip(("a", "b", "b2"), sent["robot_a"] + sent["robot_b"]):
            pipeline.pub[pub].publish(msg)

        def results():
            got = {ns: {key(r.header): r for r in pipeline.results[ns]} for ns in sent}
            found = [got[ns].get(key(m.header)) for ns in sent for m in sent[ns]]
            return found if all(found) else None
        found = pipeline.ros.wait_for(results, 20, "results of three cameras on two robots")
        assert [r.header.frame_id for r in found] == ["cam_a", "cam_b", "cam_b2"]
        if all(r.batch_size == 3 for r in found):
            return
    pytest.fail(f"no batch of three in ten rounds (last: {[r.batch_size for r in found]})")


@pytest.mark.ros
def test_task_topic_subscribers_get_their_task(pipeline):
    from mtl_split.msg import TaskResult

    task = pipeline.manifest.task_names[0]
    only = pipeline.ros.collect(TaskResult, f"/robot_b/mtl_split/results/{task}")
    msg = image_msg(frames(1, seed=11)[0], "cam_b2")
    pipeline.ros.wait_for(lambda: any(key(r.header) == key(msg.header) for r in only), 20, f"results/{task}",
                          tick=lambda: pipeline.pub["b2"].publish(msg), tick_every=0.5)
    assert all(r.prediction.task == task for r in only)


@pytest.mark.ros
def test_lifecycle_transitions(ros, launcher, tiny_bundle):
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from mtl_split_ros import qos
    from sensor_msgs.msg import Image

    from mtl_split.msg import BackboneInfo, SharedFeatures

    edge = launcher.node("edge", {"bundle": "/nonexistent/bundle", "autostart": False},
                         namespace="/robot_c", remaps={"/camera/image_raw": "/robot_c/camera/image_raw"})
    base = "/robot_c/mtl_split_edge"

    def state() -> int:
        return ros.call(GetState, f"{base}/get_state", GetState.Request(), timeout=30).current_state.id

    def change(transition: int) -> bool:
        return ros.call(ChangeState, f"{base}/change_state",
                        ChangeState.Request(transition=Transition(id=transition))).success

    assert state() == State.PRIMARY_STATE_UNCONFIGURED
    assert not change(Transition.TRANSITION_CONFIGURE)  # bad bundle: refused, node stays up
    assert state() == State.PRIMARY_STATE_UNCONFIGURED and edge.alive
    assert "no manifest.json" in edge.log()
    value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(tiny_bundle))
    ros.call(SetParameters, f"{base}/set_parameters",
             SetParameters.Request(parameters=[Parameter(name="bundle", value=value)]))

    features = ros.collect(SharedFeatures, "/robot_c/mtl_split/features")
    info = ros.collect(BackboneInfo, "/robot_c/mtl_split/backbone_info", qos.LATCHED)
    camera = ros.node.create_publisher(Image, "/robot_c/camera/image_raw", 10)
    frame = frames(1, seed=8)[0]

    assert change(Transition.TRANSITION_CONFIGURE) and state() == State.PRIMARY_STATE_INACTIVE
    assert change(Transition.TRANSITION_ACTIVATE) and state() == State.PRIMARY_STATE_ACTIVE
    ros.wait_for(lambda: info, 10, "latched BackboneInfo")
    assert info[0].model_id == load_manifest(tiny_bundle).model_id
    assert list(info[0].image_topics) == ["/robot_c/camera/image_raw"]
    ros.wait_for(lambda: features, 20, "features from the activated edge",
                 tick=lambda: camera.publish(image_msg(frame, "cam_c")))

    assert change(Transition.TRANSITION_DEACTIVATE) and state() == State.PRIMARY_STATE_INACTIVE
    ros.spin_for(0.3)
    features.clear()
    for _ in range(5):
        camera.publish(image_msg(frame, "cam_c"))
        ros.spin_for(0.1)
    ros.spin_for(0.5)
    assert not features, "an inactive edge published features"

    assert change(Transition.TRANSITION_CLEANUP) and state() == State.PRIMARY_STATE_UNCONFIGURED
    # A finalized node serves nothing: its process ends (issue 11, failure 12).
    assert change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert edge.wait(20) == 0 and "finalized by the lifecycle shutdown transition" in edge.log()


@pytest.mark.ros
def test_scores_are_float32_arrays(pipeline):
    r = pipeline.send("a", image_msg(frames(1, seed=9)[0], "cam_a"), "robot_a")
    assert isinstance(r.predictions[0].scores, array.array)
    assert abs(sum(r.predictions[0].scores) - 1.0) < 1e-4


def test_docs_describe_every_parameter():
    from pathlib import Path

    from mtl_split_ros.params import NODES

    doc = (Path(__file__).parent.parent / "docs" / "nodes.md").read_text()
    missing = [f"{spec.name}.{p.name}" for spec in NODES.values() for p in spec.params if f"`{p.name}`" not in doc]
    assert not missing, f"docs/nodes.md does not describe {missing}"
