"""Reliability floor (issue 8): nothing crashes, nothing hangs, nothing is lost silently.

Real edge and server processes over DDS, driven from an rclpy node here: malformed input
interleaved with good input, a peer running another model or a bundle that does not load,
SIGKILLed peers, QoS mistakes, a camera far faster than the backbone. Every frame sent is
accounted for: it got its result, or a node counted it on /diagnostics (and said why in one
rate-limited log line). Codec and image fuzzing without processes: test_fuzz_messages.py.
Numbers measured with these tests: docs/reliability.md.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from mtl_split_core import codec
from mtl_split_core.bundle import load_manifest, write_manifest

from helpers import Watch, compressed_msg, frames, image_msg, key, log_lines, rss_mb, stamp

pytestmark = pytest.mark.ros

SERVER = "/mtl_split_server"  # the module's server (root namespace)
EDGE_NS = "/rel_e"  # the module's edge: one good camera and one camera per kind of bad image
MAX_FEATURE_BYTES = 1 << 20
LOG_INTERVAL_S = 10.0  # Diagnostics' rate limit: one line per source and kind per interval


# --- bundles --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def other_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model as far as model_id goes (same files, different manifest content)."""
    out = tmp_path_factory.mktemp("other") / "bundle"
    shutil.copytree(tiny_bundle, out)
    manifest = load_manifest(out)
    write_manifest(out, dataclasses.replace(manifest, extra={**manifest.extra, "variant": "other"}))
    assert load_manifest(out).model_id != manifest.model_id
    return out


@pytest.fixture(scope="module")
def big_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """224x224 efficientnet_b0 (random weights): ~15 ms a frame on one core, far slower than
    a 200 Hz camera."""
    from mtl_split_bench.bundles import random_bundle

    return random_bundle(tmp_path_factory.mktemp("big"), "efficientnet_b0", {"a": ["x", "y"]}, 224)


# --- what the test node sees ------------------------------------------------------------------

@pytest.fixture(scope="module")
def watch(ros: Any) -> Watch:
    return Watch(ros)


# --- the module's pipeline: a server serving fault topics, an edge with bad cameras -------------

def _fingerprinted(enc: codec.EncodedFeatures, model_id: str) -> Any:
    from mtl_split.msg import SharedFeatures

    msg = codec.to_message(enc, SharedFeatures())
    msg.model_fingerprint = np.frombuffer(codec.fingerprint(model_id), np.uint8)
    return msg


def good_features(manifest: Any, seed: int, c: str = "none") -> Any:
    x = np.random.default_rng(seed).standard_normal(manifest.features.shape).astype(np.float32)
    return _fingerprinted(codec.encode(x, "float32", c), manifest.model_id)


def _set(msg: Any, **fields: Any) -> Any:
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def _payload(manifest: Any, shape: tuple[int, ...], data: bytes) -> Any:
    """float32 features of this model claiming `shape`, carrying `data`."""
    empty = np.zeros(0, np.float32)
    return _fingerprinted(codec.EncodedFeatures("float32", shape, empty, empty, "none", data), manifest.model_id)


FILTERED = "filtered"  # kind of a frame DDS keeps from the server: not seen, so not counted


@dataclass(frozen=True)
class BadFeatures:
    make: Callable[[Any, int], Any]  # (manifest, seed) -> SharedFeatures
    kind: str  # the server's error kind (errors.<kind> on /diagnostics)
    says: str  # what its log line must say


def _half(msg: Any) -> Any:
    return _set(msg, data=bytes(msg.data)[: len(msg.data) // 2])


BAD_FEATURES: dict[str, BadFeatures] = {
    "truncated": BadFeatures(lambda m, s: _half(good_features(m, s)), "bad_payload", "truncated or oversized"),
    "truncated_zstd": BadFeatures(lambda m, s: _half(good_features(m, s, "zstd")), "bad_payload",
                                  "zstd payload does not decompress"),
    "shape_mismatch": BadFeatures(
        lambda m, s: good_features(dataclasses.replace(m, features=dataclasses.replace(
            m.features, shape=tuple(m.features.shape)[::-1] + (1,))), s), "bad_payload", "this bundle's heads take"),
    "oversized": BadFeatures(lambda m, s: _set(good_features(m, s), data=bytes(good_features(m, s).data) + b"\0" * 4),
                             "bad_payload", "truncated or oversized"),
    "unknown_dtype": BadFeatures(lambda m, s: _set(good_features(m, s), dtype=42), "bad_payload",
                                 "unknown dtype code 42"),
    "unknown_codec": BadFeatures(lambda m, s: _set(good_features(m, s), codec=9), "bad_payload",
                                 "unknown codec code 9"),
    "schema_version": BadFeatures(lambda m, s: _set(good_features(m, s), schema_version=99), "schema_mismatch",
                                  "schema_version 99, this receiver reads"),
    # A frame size that would make the dense results gigabytes: refused before any heads run.
    "huge_frame": BadFeatures(lambda m, s: _fingerprinted(dataclasses.replace(
        codec.encode(np.zeros(m.features.shape, np.float32), "float32"), source_size=(1 << 20, 1 << 20)), m.model_id),
        "bad_payload", "over the server's max_pixels"),
    "gigabytes": BadFeatures(lambda m, s: _payload(m, (1 << 16, 1 << 16, 1 << 8), b""),
                             "bad_payload", "this bundle's heads take"),
    "nan": BadFeatures(lambda m, s: _payload(m, tuple(m.features.shape),
                                             np.full(m.features.shape, np.nan, np.float32).tobytes()),
                       "bad_payload", "NaN"),
    # Another model's frames (an empty message has fingerprint 0) never reach the server: DDS
    # filters them by fingerprint (issue 11: a flood of them starved this model's frames).
    "empty": BadFeatures(lambda m, s: type(good_features(m, s))(), FILTERED, ""),
    "foreign_model": BadFeatures(lambda m, s: _fingerprinted(codec.encode(np.zeros(m.features.shape, np.float32)),
                                                             "mtl-someone-else"), FILTERED, ""),
}
COUNTED = {n: b for n, b in BAD_FEATURES.items() if b.kind != FILTERED}
# A valid payload stamped by a robot with a broken clock (negative seconds): served, not dropped.
BAD_CLOCK = "bad_clock"


def fault_topic(name: str) -> str:
    return f"/rel_f_{name}/mtl_split/features"


@dataclass(frozen=True)
class BadImage:
    topic: str  # relative to the edge's namespace; .../compressed is a CompressedImage
    make: Callable[[np.ndarray], Any]  # good RGB frame -> broken message
    says: str


def _jpeg_truncated(rgb: np.ndarray) -> Any:
    msg = compressed_msg(rgb, "cam", fmt="jpg")
    return _set(msg, data=bytes(msg.data)[: len(msg.data) // 3])


BAD_IMAGES: dict[str, BadImage] = {
    "wrong_step": BadImage("bad_step/image_raw", lambda rgb: _set(image_msg(rgb, "cam"), step=7), "step 7 < width"),
    "size_vs_data": BadImage("bad_size/image_raw", lambda rgb: _set(image_msg(rgb, "cam"),
                                                                    data=rgb.tobytes()[:-10]),
                             "truncated or mis-sized image"),
    "unsupported_encoding": BadImage("bad_encoding/image_raw", lambda rgb: _set(image_msg(rgb, "cam"),
                                                                                encoding="yuv420p10"),
                                     "unsupported encoding 'yuv420p10'"),
    "float_depth": BadImage("bad_float/image_raw", lambda rgb: _set(image_msg(rgb, "cam"), encoding="32FC1",
                                                                    step=rgb.shape[1] * 4,
                                                                    data=bytes(rgb.shape[0] * rgb.shape[1] * 4)),
                            "cannot convert '32FC1'"),
    "empty": BadImage("bad_empty/image_raw", lambda rgb: _set(image_msg(rgb, "cam"), height=0, width=0, step=0,
                                                              data=b""), "empty image"),
    "corrupt_jpeg": BadImage("bad_jpeg/image_raw/compressed", _jpeg_truncated, "does not decode"),
    "depth_png": BadImage("bad_depth/image_raw/compressed",
                          lambda rgb: _set(compressed_msg(rgb, "cam"), format="16UC1; compressedDepth"),
                          "is a depth image"),
}
GOOD_CAMERA = "camera/image_raw"


@dataclass
class Pipeline:
    server: Any
    edge: Any
    manifest: Any


@pytest.fixture(scope="module")
def pipeline(launcher: Any, tiny_bundle: Path) -> Pipeline:
    topics = [fault_topic(n) for n in [*BAD_FEATURES, BAD_CLOCK, "qos"]]
    server = launcher.node("server", {
        "bundle": str(tiny_bundle), "discover": False, "diagnostics_period_s": 0.5,
        "max_feature_bytes": MAX_FEATURE_BYTES,
        "features_topics": topics + [f"{EDGE_NS}/mtl_split/features", "/rel_m/mtl_split/features"]})
    edge = launcher.node("edge", {
        "bundle": str(tiny_bundle), "diagnostics_period_s": 0.5, "batch_cameras": False,
        "image_topics": [GOOD_CAMERA] + [b.topic for b in BAD_IMAGES.values()]}, namespace=EDGE_NS)
    return Pipeline(server, edge, load_manifest(tiny_bundle))


def _publishers(ros: Any, topics: dict[str, str], msg_type: type, depth: int = 50) -> dict[str, Any]:
    return {name: ros.node.create_publisher(msg_type, topic, depth) for name, topic in topics.items()}


# --- 1. malformed input -----------------------------------------------------------------------

def test_server_rejects_malformed_features_and_serves_every_good_frame(ros, watch, pipeline):
    """Each robot sends bad and good features alternately; every bad one is counted under its
    kind with one log line saying why, every good one gets its result."""
    from mtl_split.msg import SharedFeatures

    m = pipeline.manifest
    names = [*BAD_FEATURES, BAD_CLOCK]
    pubs = _publishers(ros, {n: fault_topic(n) for n in names}, SharedFeatures)
    for n in names:  # every path discovered and warm
        watch.served(f"/rel_f_{n}", pubs[n].publish, stamp(good_features(m, 0), "warm"))
    before = watch.baseline((SERVER,), ("frames_in", "frames_out", "dropped", "errors.bad_payload",
                                        "errors.model_mismatch", "errors.schema_mismatch", "errors.internal"))
    rounds, goods = 10, {n: [] for n in names}
    start = time.monotonic()
    for r in range(rounds):
        for n in names:
            if n != BAD_CLOCK:
                pubs[n].publish(stamp(BAD_FEATURES[n].make(m, r), "bad"))
            good = stamp(good_features(m, r), "good")
            if n == BAD_CLOCK:
                good.sent_us = (1 << 32) - 5_000_000  # its clock 5 s before the epoch
            pubs[n].publish(good)
            goods[n].append((key(good.header), time.monotonic()))
        ros.spin_for(0.05)
    for n in names:
        ros.wait_for(lambda n=n: all(k in watch.results(f"/rel_f_{n}") for k, _ in goods[n]), 20,
                     f"every good frame's result on /rel_f_{n}")
    bad = {kind: rounds * sum(b.kind == kind for b in BAD_FEATURES.values())
           for kind in ("bad_payload", "model_mismatch", "schema_mismatch")}
    total = rounds * (len(COUNTED) + len(names))
    delta = watch.until(before, lambda d: d[SERVER]["frames_in"] >= total and
                        d[SERVER]["frames_out"] >= rounds * len(names))[SERVER]
    # The filtered frames come from the same publisher as good ones: the gaps they leave in its
    # sequence numbers count as dropped too, so every bad frame is accounted for.
    assert delta == {
        "frames_in": total, "frames_out": rounds * len(names), "dropped": rounds * len(BAD_FEATURES),
        "errors.bad_payload": bad["bad_payload"], "errors.model_mismatch": bad["model_mismatch"],
        "errors.schema_mismatch": bad["schema_mismatch"], "errors.internal": 0}
    # Full rate: good frames were answered as they came, not after a backlog.
    latency = [watch.received_at[f"/rel_f_{n}"][k] - t for n in names for k, t in goods[n]]
    print(f"\nserver: {len(BAD_FEATURES)} kinds x {rounds} malformed + {rounds * len(names)} good SharedFeatures: "
          f"{delta}; good results {rounds * len(names)}/{rounds * len(names)}, slowest {max(latency) * 1e3:.0f} ms")
    assert max(latency) < 2.0, f"slowest good frame took {max(latency):.2f} s"
    assert time.monotonic() - start < LOG_INTERVAL_S, "too slow to check the rate limit"
    for n, bad_features in BAD_FEATURES.items():
        lines = log_lines(pipeline.server, f"{fault_topic(n)}: frame dropped")
        if bad_features.kind == FILTERED:
            assert not lines, (n, lines)
        else:
            assert len(lines) == 1 and f"[{bad_features.kind}]" in lines[0] and bad_features.says in lines[0], (n, lines)
    assert pipeline.server.alive and "Traceback" not in pipeline.server.log(100_000)


def test_edge_rejects_malformed_images_and_serves_every_good_frame(ros, watch, pipeline):
    """A good camera at 30 Hz beside one camera per kind of broken image, each at 30 Hz."""
    from sensor_msgs.msg import CompressedImage, Image

    edge = f"{EDGE_NS}/mtl_split_edge"
    good_pub = ros.node.create_publisher(Image, f"{EDGE_NS}/{GOOD_CAMERA}", 10)
    pubs = {n: ros.node.create_publisher(CompressedImage if b.topic.endswith("/compressed") else Image,
                                         f"{EDGE_NS}/{b.topic}", 10) for n, b in BAD_IMAGES.items()}
    rgb = frames(4, seed=21)
    watch.served(EDGE_NS, good_pub.publish, image_msg(rgb[0], "warm"))
    ros.wait_for(lambda: all(p.get_subscription_count() for p in pubs.values()), 20, "the edge's bad cameras")
    before = watch.baseline((edge,), ("frames_in", "frames_out", "dropped", "errors.bad_image", "errors.internal"))
    rounds, goods = 60, []
    start = time.monotonic()
    for r in range(rounds):
        for n, bad in BAD_IMAGES.items():
            pubs[n].publish(stamp(bad.make(rgb[r % 4]), "bad"))
        good = image_msg(rgb[r % 4], "good")
        good_pub.publish(good)
        goods.append((key(good.header), time.monotonic()))
        ros.spin_for(1 / 30)
    results = watch.results(EDGE_NS)
    ros.wait_for(lambda: all(k in results for k, _ in goods), 20, "every good frame's result")
    sent = rounds * (len(BAD_IMAGES) + 1)

    def gaps(d: dict[str, int]) -> int:
        """Frames replaced unseen in a camera's depth-1 queue (dropped, but not bad_image)."""
        return d["dropped"] - d["errors.bad_image"]
    delta = watch.until(before, lambda d: d[edge]["frames_in"] + gaps(d[edge]) >= sent)[edge]
    # Every frame sent is accounted for: taken (frames_in) or replaced unseen (counted from
    # sequence numbers); every bad one taken is counted as bad_image, every good one published.
    gaps = gaps(delta)
    assert delta["frames_in"] + gaps == sent
    assert delta["errors.bad_image"] == rounds * len(BAD_IMAGES) - gaps and delta["frames_out"] == rounds
    assert delta["errors.internal"] == 0
    latency = [watch.received_at[EDGE_NS][k] - t for k, t in goods]
    print(f"\nedge: {len(BAD_IMAGES)} kinds x {rounds} malformed + {rounds} good images at 30 Hz each: {delta}; "
          f"good results {sum(k in results for k, _ in goods)}/{rounds}, slowest {max(latency) * 1e3:.0f} ms")
    assert max(latency) < 2.0, f"slowest good frame took {max(latency):.2f} s"
    assert time.monotonic() - start < LOG_INTERVAL_S
    for n, bad in BAD_IMAGES.items():
        lines = log_lines(pipeline.edge, f"[bad_image] {EDGE_NS}/{bad.topic}: frame dropped")
        assert len(lines) == 1 and bad.says in lines[0], (n, lines)
    assert pipeline.edge.alive and "Traceback" not in pipeline.edge.log(100_000)


# --- 2. edge/server mismatch --------------------------------------------------------------------

def _break_bundle(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    if how == "tampered":  # a file replaced after export: its hash no longer matches
        data = bytearray((dst / "heads.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (dst / "heads.onnx").write_bytes(bytes(data))
    elif how == "missing":
        (dst / "backbone.onnx").unlink()
    elif how == "edited_manifest":  # model_id no longer the content hash
        text = (dst / "manifest.json").read_text()
        (dst / "manifest.json").write_text(text.replace('"split_point": "', '"split_point": "x', 1))
    elif how == "corrupt_onnx":  # hashes re-written over a file ONNX Runtime cannot parse
        (dst / "backbone.onnx").write_bytes(b"not an onnx model")
        write_manifest(dst, load_manifest(dst, verify_files=False))
    return dst


BROKEN = {  # how -> (node that loads it, what its one error line must say)
    "tampered": ("server", "heads.onnx does not match its hash in manifest.json"),
    "missing": ("edge", "backbone.onnx is missing"),
    "edited_manifest": ("server", "does not match the manifest's content"),
    "corrupt_onnx": ("edge", "ONNX Runtime cannot load"),
}


def test_bundle_that_does_not_load_ends_the_node_with_one_clear_line(launcher, tiny_bundle, tmp_path):
    procs = {how: launcher.node(node, {"bundle": str(_break_bundle(tiny_bundle, tmp_path / how, how))},
                                namespace=f"/rel_b_{how}")
             for how, (node, _) in BROKEN.items()}
    for how, proc in procs.items():
        assert proc.wait(60) == 1, (how, proc.log())
        log = proc.log()
        assert "Traceback" not in log, (how, log)
        errors = [line for line in log.splitlines() if "[ERROR]" in line]
        assert len(errors) == 1 and "configure failed: " in errors[0] and BROKEN[how][1] in errors[0], (how, log)
        assert "autostart failed (see the error above); exiting" in log


def test_lifecycle_managed_server_stays_unconfigured_on_a_tampered_bundle(ros, launcher, tiny_bundle, tmp_path):
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    server = launcher.node("server", {
        "bundle": str(_break_bundle(tiny_bundle, tmp_path / "b", "tampered")), "autostart": False},
        namespace="/rel_lc")
    base = "/rel_lc/mtl_split_server"
    request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))
    assert not ros.call(ChangeState, f"{base}/change_state", request, timeout=30).success
    state = ros.call(GetState, f"{base}/get_state", GetState.Request()).current_state.id
    assert state == State.PRIMARY_STATE_UNCONFIGURED and server.alive
    assert "configure failed: " in server.log() and "does not match its hash" in server.log()


def test_edge_running_another_model_is_reported_before_its_first_frame(ros, watch, launcher, pipeline,
                                                                       other_bundle):
    """The server warns from the edge's latched BackboneInfo; its frames never reach the server
    (DDS filters them by model fingerprint), and the server names the publisher none of whose
    frames it could use; the other robots keep being served."""
    from sensor_msgs.msg import Image

    from mtl_split.msg import BackboneInfo, SharedFeatures
    from mtl_split_ros import qos

    other = load_manifest(other_bundle).model_id
    edge = launcher.node("edge", {"bundle": str(other_bundle), "image_topics": [GOOD_CAMERA]},
                         namespace="/rel_m")
    ros.wait_for(lambda: log_lines(pipeline.server, f"runs model {other}"), 30,
                 "the server's warning about /rel_m's model")
    assert "/rel_m/mtl_split/features" in log_lines(pipeline.server, f"runs model {other}")[0]
    # Another release's edge says so in its BackboneInfo too.
    info = ros.node.create_publisher(BackboneInfo, "/rel_f_schema_version/mtl_split/backbone_info", qos.LATCHED)
    info.publish(BackboneInfo(schema_version=SharedFeatures.SCHEMA_VERSION + 1,
                              model_id=pipeline.manifest.model_id))
    ros.wait_for(lambda: log_lines(pipeline.server, f"schema {SharedFeatures.SCHEMA_VERSION + 1}, this server"),
                 30, "the server's warning about the edge's schema version")

    camera = ros.node.create_publisher(Image, f"/rel_m/{GOOD_CAMERA}", 10)
    results = watch.results("/rel_m")
    before = watch.count(SERVER, "errors.model_mismatch")
    rgb = frames(1, seed=31)[0]
    silent = "[silent_publisher] /rel_m/mtl_split/features: /rel_m/mtl_split_edge publishes"
    ros.wait_for(lambda: log_lines(pipeline.server, silent), 30, "the server to name /rel_m's edge",
                 tick=lambda: camera.publish(image_msg(rgb, "cam_m")), tick_every=0.1)
    ros.spin_for(1.0)
    assert not results and watch.count(SERVER, "errors.model_mismatch") == before
    print(f"\nanother model: /rel_m's frames filtered before the server, 0 results; {log_lines(pipeline.server, silent)[0]}")
    assert len(log_lines(pipeline.server, silent)) == 1
    watch.served(EDGE_NS, ros.node.create_publisher(Image, f"{EDGE_NS}/{GOOD_CAMERA}", 10).publish,
                 image_msg(rgb, "cam_e"))
    assert edge.alive and pipeline.server.alive
    assert edge.stop() == 0


# --- 3. restarts ----------------------------------------------------------------------------------

class Camera:
    """A 20 Hz camera the test keeps publishing while it waits for anything."""

    def __init__(self, ros: Any, topic: str, rate_hz: float = 20.0) -> None:
        from sensor_msgs.msg import Image

        self.ros, self.rgb = ros, frames(8, seed=41)
        self.pub = ros.node.create_publisher(Image, topic, 10)
        self.sent: list[tuple[tuple, float]] = []
        self.timer = ros.node.create_timer(1 / rate_hz, self._tick)

    def _tick(self) -> None:
        msg = image_msg(self.rgb[len(self.sent) % len(self.rgb)], "cam_r")
        self.pub.publish(msg)
        self.sent.append((key(msg.header), time.monotonic()))

    def stop(self) -> None:
        self.ros.node.destroy_timer(self.timer)


@pytest.fixture
def restart_pair(ros, watch, launcher, tiny_bundle):
    """Edge + server of their own in /rel_r, a camera publishing, results flowing."""
    ns = "/rel_r"
    params = {"bundle": str(tiny_bundle), "diagnostics_period_s": 0.5}
    start_server = lambda: launcher.node("server", {**params, "discover": False,  # noqa: E731
                                                    "features_topics": ["mtl_split/features"]}, namespace=ns)
    start_edge = lambda: launcher.node("edge", {**params, "image_topics": [GOOD_CAMERA]}, namespace=ns)  # noqa: E731
    procs = {"server": start_server(), "edge": start_edge()}
    camera = Camera(ros, f"{ns}/{GOOD_CAMERA}")
    results = watch.results(ns)
    ros.wait_for(lambda: results, 60, "first results in /rel_r")
    yield procs, {"server": start_server, "edge": start_edge}, camera, results
    camera.stop()
    for proc in procs.values():
        proc.stop()


def _resume_s(ros: Any, camera: Camera, results: dict, since: float, timeout: float = 30.0) -> float:
    """Seconds from `since` until the result of a frame published after it arrives."""
    ros.wait_for(lambda: any(k in results for k, t in camera.sent if t > since), timeout,
                 "results to resume")
    return time.monotonic() - since


def _lost(camera: Camera, results: dict, since: float, until: float) -> int:
    """Camera frames published in [since, until) that never got a result."""
    return sum(k not in results for k, t in camera.sent if since <= t < until)


@pytest.mark.parametrize("victim", ["server", "edge"])
def test_sigkilled_peer_restarts_and_results_resume(ros, watch, restart_pair, victim):
    """SIGKILL one side four times while the camera runs: the other side keeps running (and
    the edge keeps publishing), results resume within seconds of each restart, and the
    survivor's resident memory does not grow after the first restart (which allocates for
    good: measured flat within 1 MB over 10 more)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from mtl_split.msg import SharedFeatures

    procs, start, camera, results = restart_pair
    survivor = "edge" if victim == "server" else "server"
    if victim == "server":
        _server_stop_is_counted_at_the_edge(ros, watch, procs, start, camera, results)
    features: set[tuple] = set()
    ros.node.create_subscription(SharedFeatures, "/rel_r/mtl_split/features", lambda m: features.add(key(m.header)),
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    ros.wait_for(lambda: features, 20, "/rel_r's features to reach the test")  # matched before the first kill
    resumes, lost, rss = [], [], []
    for cycle in range(4):
        procs[victim].kill()
        down = time.monotonic()
        ros.spin_for(1.5)
        assert procs[survivor].alive, procs[survivor].log()
        if victim == "server":  # the edge goes on publishing, not stalled by its dead subscriber
            during = [k for k, t in camera.sent if down < t < down + 1.3]
            assert sum(k in features for k in during) > 0.8 * len(during), "the edge stalled"
        procs[victim] = start[victim]()
        restarted = time.monotonic()
        resumes.append(_resume_s(ros, camera, results, restarted))
        lost.append(_lost(camera, results, down, restarted + resumes[-1]))
        ros.spin_for(1.0)
        rss.append(rss_mb(procs[survivor]))
    print(f"\n{victim} SIGKILLed 4x: results resumed {', '.join(f'{s:.1f}' for s in resumes)} s after the "
          f"restart; frames without results from the kill to the resumption {lost}; {survivor} RSS after each "
          f"restart {', '.join(f'{r:.1f}' for r in rss)} MB")
    assert max(resumes) < 15.0, f"results resumed after {resumes} s"
    assert rss[-1] - rss[0] < 0.05 * rss[0], f"{survivor} RSS grew {rss[-1] - rss[0]:.1f} MB over 3 restarts"
    assert procs[survivor].alive and "Traceback" not in procs[survivor].log(100_000)


def _server_stop_is_counted_at_the_edge(ros, watch, procs, start, camera, results) -> None:
    """A server that stops cleanly leaves the edge without subscribers at once: every frame
    the edge publishes meanwhile is counted as `unheard` on its /diagnostics. (A SIGKILLed
    one stays matched for its DDS lease, 20 s with Fast DDS's default.)"""
    edge = "/rel_r/mtl_split_edge"
    procs["server"].stop()
    ros.spin_for(1.0)  # the edge notices the server left
    before = watch.baseline((edge,), ("frames_out", "unheard"))
    ros.spin_for(2.0)
    delta = watch.until(before, lambda d: False, timeout=0)[edge]
    assert delta["frames_out"] > 20 and delta["unheard"] == delta["frames_out"], delta
    procs["server"] = start["server"]()
    _resume_s(ros, camera, results, time.monotonic())


# --- 4. QoS mistakes --------------------------------------------------------------------------------

def test_incompatible_qos_peers_are_reported_with_the_fix(ros, watch, pipeline):
    """A reliable subscription meets a best-effort publisher; transient-local subscribers meet
    volatile publishers. Each side that can tell says so, with what to change."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from mtl_split_ros import qos

    from mtl_split.msg import MultiTaskResult, SharedFeatures

    edge = f"{EDGE_NS}/mtl_split_edge"
    before = {n: watch.count(n, "errors.incompatible_qos") for n in (SERVER, edge)}
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    ros.node.create_publisher(SharedFeatures, fault_topic("qos"), best_effort)
    ros.node.create_subscription(SharedFeatures, f"{EDGE_NS}/mtl_split/features", lambda m: None, qos.LATCHED)
    ros.node.create_subscription(MultiTaskResult, f"{EDGE_NS}/mtl_split/results", lambda m: None, qos.LATCHED)
    expected = [
        (pipeline.server, f"[incompatible_qos] {fault_topic('qos')}: a publisher", "RELIABILITY",
         "features_qos_reliability:=best_effort"),
        (pipeline.edge, f"[incompatible_qos] {EDGE_NS}/mtl_split/features: a subscriber", "DURABILITY", "volatile"),
        (pipeline.server, f"[incompatible_qos] {EDGE_NS}/mtl_split/results: a subscriber", "DURABILITY", "volatile"),
    ]
    for proc, prefix, policy, fix in expected:
        lines = ros.wait_for(lambda: log_lines(proc, prefix), 20, prefix)
        assert policy in lines[0] and "Fix: " in lines[0] and fix in lines[0], lines
    watch.settle(SERVER, "errors.incompatible_qos", before[SERVER] + 2)
    watch.settle(edge, "errors.incompatible_qos", before[edge] + 1)


# --- 5. overload ------------------------------------------------------------------------------------

def test_camera_faster_than_the_backbone_keeps_newest_frames_and_counts_every_drop(ros, watch, launcher,
                                                                                    big_bundle):
    """200 Hz of 224x224 frames into a ~15 ms backbone: the edge works on the newest frame
    (latency stays one inference, no backlog), its memory stays flat, and every frame is
    accounted for: sent = results + frames the nodes counted as dropped."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    ns, rate_hz, seconds = "/rel_o", 200.0, 5.0
    params = {"bundle": str(big_bundle), "diagnostics_period_s": 0.5, "threads": 1}
    edge = launcher.node("edge", {**params, "image_topics": [GOOD_CAMERA]}, namespace=ns)
    server = launcher.node("server", {**params, "discover": False, "features_topics": ["mtl_split/features"]},
                           namespace=ns)
    # Like a camera driver: best effort, keep last 1.
    camera = ros.node.create_publisher(Image, f"{ns}/{GOOD_CAMERA}",
                                       QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    rgb = [cv2.resize(f, (224, 224)) for f in frames(5, seed=51)]
    watch.served(ns, camera.publish, image_msg(rgb[0], "warm"), timeout=60)
    edge_fqn, server_fqn = f"{ns}/mtl_split_edge", f"{ns}/mtl_split_server"
    before = watch.baseline((edge_fqn, server_fqn), ("frames_in", "frames_out", "dropped", "errors"))
    rss_before = rss_mb(edge)
    results = watch.results(ns)
    sent: dict[tuple, float] = {}

    def publish(i: int) -> None:
        msg = image_msg(rgb[i % len(rgb)], "cam_o")
        camera.publish(msg)
        sent[key(msg.header)] = time.monotonic()

    t0 = time.monotonic()
    for i in range(int(rate_hz * seconds)):
        publish(i)
        while time.monotonic() < t0 + (i + 1) / rate_hz:
            ros.executor.spin_once(timeout_sec=0.001)
    camera_hz = len(sent) / (time.monotonic() - t0)
    rss_peak = rss_mb(edge)
    # A slow tail until one frame is answered: its sequence number closes the edge's gap count.
    tail = len(sent)
    ros.wait_for(lambda: any(k in results for k in list(sent)[tail:]), 30, "a tail frame's result",
                 tick=lambda: publish(len(sent)), tick_every=0.3)
    ros.spin_for(1.0)  # frames in flight
    got = [k for k in sent if k in results]
    delta = watch.until(before, lambda d: d[server_fqn]["frames_out"] >= len(got) and
                        d[edge_fqn]["frames_in"] + d[edge_fqn]["dropped"] >= len(sent))
    e, s = delta[edge_fqn], delta[server_fqn]
    latency = sorted(watch.received_at[ns][k] - sent[k] for k in got)
    print(f"\ncamera {camera_hz:.0f} Hz x {len(sent)} frames: {len(got)} results, edge dropped {e['dropped']}, "
          f"server dropped {s['dropped']}; latency p50 {latency[len(latency) // 2] * 1e3:.0f} ms, "
          f"max {latency[-1] * 1e3:.0f} ms; edge RSS {rss_before:.1f} -> peak {rss_peak:.1f} MB")
    assert camera_hz > 100, "the test could not publish fast enough to overload the edge"
    assert e["frames_in"] + e["dropped"] == len(sent)  # every frame taken or counted as replaced
    assert e["dropped"] > 0.3 * len(sent), "the edge was not overloaded"
    assert s["frames_in"] + s["dropped"] == e["frames_out"]  # nothing lost between edge and server
    assert len(got) == s["frames_out"] and e["errors"] == s["errors"] == 0
    assert len(sent) == len(got) + e["dropped"] + s["dropped"]
    assert latency[-1] < 1.0, f"a frame waited {latency[-1]:.2f} s: frames queue up instead of being replaced"
    assert rss_peak - rss_before < 30, "edge memory grew under overload"
    assert edge.alive and server.alive
    assert edge.stop() == 0 and server.stop() == 0
