"""Bag -> pipeline -> report: what the bundle predicts on any bag's camera frames, latency,
bytes, FPS and drops, and accuracy where the bag (or a sidecar table) has labels.

Live mode replays the bag into real edge and server nodes (started here, or already
running with --attach). Offline mode runs the same bundle on the same frames in this
process through mtl_split_core.runtime, which the nodes use too: with no drops, live and
offline must agree frame for frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mtl_split_core.bundle import Manifest, load_manifest
from mtl_split_core.dense import to_frame
from mtl_split_core.errors import MtlSplitError
from mtl_split_core.runtime import DenseResult

from mtl_split_ros.launch_plan import LaunchArgs, plan

from . import report
from .bag_reading import read_frames
from .bags import COMPRESSED, Frame, decode_frame
from .labels import read_sidecar, resolve
from .metrics import percentiles
from .processes import NodeProcesses
from .task_report import Classified, task_report

# Frames whose raw and JPEG sizes make the baseline: all of them up to this many, else this
# many spread evenly over the bag (the same ones in live and offline mode; decoded one at a
# time: HD bags are large).
BASELINE_FRAMES = 100


@dataclass(frozen=True)
class EvalOptions:
    bundle: Path
    bag: Path
    out: Path
    rate: float | None = 1.0  # real-time factor; None = as fast as the pipeline takes it
    compressed: bool = False  # replay raw frames as JPEG CompressedImage
    attach: bool = False  # use a running pipeline instead of starting one
    offline: bool = False
    namespace: str = ""
    edge_params: dict[str, Any] | None = None  # extra edge parameters (dtype, codec, ...)
    limit: int | None = None
    camera_topic: str | None = None  # None: the bag's only image topic
    labels: Path | None = None  # sidecar label table (labels.py)
    record: Path | None = None  # write what the pipeline said into this MCAP bag (recording.py)


def _rgb(frame: Frame) -> np.ndarray:
    from mtl_split_core.imaging import to_array

    return to_array(decode_frame(frame), "rgb8")


def image_baseline(frames: list[Frame]) -> dict[str, int]:
    """Median bytes/frame of the camera image itself, raw and as JPEG: the paper's baseline,
    on the same frames whichever the mode."""
    picked = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), BASELINE_FRAMES)).round().astype(int))
    sizes: dict[str, list[int]] = {"raw_image": [], "jpeg90_image": [], "jpeg75_image": []}
    for i in picked:
        bgr = cv2.cvtColor(_rgb(frames[i]), cv2.COLOR_RGB2BGR)
        sizes["raw_image"].append(bgr.nbytes)
        for q in (90, 75):
            sizes[f"jpeg{q}_image"].append(len(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])[1]))
    out = {k: int(np.median(v)) for k, v in sizes.items()} | {"baseline_frames": len(picked)}
    return out | _sent_instead([_rgb(frames[i]) for i in picked])


def _sent_instead(rgb: list[np.ndarray]) -> dict[str, int]:
    """What ROS users send instead of features, as whole serialized messages: JPEG-90 per
    frame, and the frames in bag order as an H.264 CRF 23 stream (ffmpeg_image_transport's
    way, odd sides cropped by a pixel as yuv420p needs even ones; left out without PyAV or
    for a size libx264 refuses)."""
    from mtl_split_bench.image_codecs import jpeg, video
    from mtl_split_bench.message_sizes import image_message_bytes

    out = {"jpeg90_message": int(np.median([image_message_bytes(jpeg(im, 90), "jpeg") for im in rgb]))}
    try:
        import av
    except ImportError:
        return out
    even = [im[:im.shape[0] // 2 * 2, :im.shape[1] // 2 * 2] for im in rgb]
    try:
        packets = video(even, "libx264", 23)[0]
    except (av.FFmpegError, ValueError, OSError, RuntimeError):
        return out
    return out | {"h264_crf23_message": int(np.mean([image_message_bytes(p, "h264") for p in packets]))}


def _size(frame: Frame) -> tuple[int, int]:
    from mtl_split_core.imaging import frame_size

    return frame_size(decode_frame(frame))


def run_offline(opts: EvalOptions, manifest: Manifest, frames: list[Frame]) -> tuple[dict, dict[int, dict[str, Any]]]:
    from mtl_split_core.imaging import decode, frame_size
    from mtl_split_core.runtime import EdgeModel, ServerModel
    from mtl_split_ros.params import EDGE

    edge_kw = {**EDGE.defaults(), **(opts.edge_params or {})}
    edge = EdgeModel(opts.bundle, dtype=edge_kw["dtype"] or None, codec_name=edge_kw["codec"] or None,
                     per_channel=bool(edge_kw["per_channel"]))
    server = ServerModel(opts.bundle)
    reduce_for = manifest.input if edge_kw["jpeg_reduced_decode"] else None
    start = time.perf_counter()
    payload, lat, predicted = [], [], {}
    for f in frames:  # decoded one at a time, as the edge decodes them
        msg = decode_frame(f)
        t = time.perf_counter()
        enc = edge([decode(msg, edge_kw["max_pixels"], reduce_for)])[0]
        pred = server.predict(server.decode(enc)[None])[0]
        lat.append((time.perf_counter() - t) * 1e3)
        payload.append(len(enc.data))
        size = frame_size(msg)
        predicted[f.stamp_ns] = {k: p.in_source(manifest.input, *size) if isinstance(p, DenseResult)
                                 else Classified(p.class_id, p.score) for k, p in pred.items()}
    elapsed = time.perf_counter() - start
    extra = {"fps": round(len(frames) / elapsed, 2), "latency_ms": {"end_to_end": percentiles(lat)},
             "bytes_per_frame": {"features_payload": int(np.median(payload))},
             "frames": {"sent": len(frames), "received": len(frames), "dropped": 0, "foreign": 0}, "e2e": lat}
    return extra, predicted


def _recording_viz() -> dict[str, Any]:
    """The drawing node of a recording: it waits for a frame's results as long as the replay
    does, and its queues (images, results, annotated images) hold as many frames as a starved
    process may fall behind by (its defaults suit a live view, not a record of every frame)."""
    from .replay import RESULT_TIMEOUT_S

    return {"pair_timeout_s": RESULT_TIMEOUT_S, "max_pending": 100,
            **{f"{group}_qos_depth": 100 for group in ("image", "results", "annotated")}}


def run_live(opts: EvalOptions, manifest: Manifest, frames: list[Frame], recording: Any = None
             ) -> tuple[dict, dict[int, dict[str, Any]]]:
    """Replay into the user's running pipeline (--attach), or into nodes started here on a
    private DDS domain, so that no other run on this host sees our frames or we theirs. A
    recording starts the visualization node too (its annotated images go into the bag)."""
    from .domain import PrivateDomain

    if opts.attach:
        return _replay_live(opts, manifest, frames, None, recording)
    with PrivateDomain():
        nodes = plan("pipeline", LaunchArgs(bundle=str(opts.bundle.resolve()), camera_topic=frames[0].topic,
                                            namespace=opts.namespace, viz=recording is not None,
                                            overrides={"edge": dict(opts.edge_params or {}),
                                                       "viz": _recording_viz()}))
        with NodeProcesses(nodes, log_dir=opts.out / "logs") as procs:
            return _replay_live(opts, manifest, frames, procs, recording)


def _replay_live(opts: EvalOptions, manifest: Manifest, frames: list[Frame], procs: NodeProcesses | None,
                 recording: Any = None) -> tuple[dict, dict[int, dict[str, Any]]]:
    import os

    from .replay import replay
    from .replay_stats import end_to_end_ms, replay_stats

    started = time.time()
    dense = [t for t in manifest.tasks if t.dense]
    log = replay(opts.namespace, frames, opts.rate, dense=dense, recording=recording)
    if procs is not None:
        procs.check_alive()
    extra = {**replay_stats(log), "ros_domain_id": int(os.environ.get("ROS_DOMAIN_ID", 0)),
             "replay_unix_s": [round(started, 3), round(time.time(), 3)], "e2e": end_to_end_ms(log)}
    predicted: dict[int, dict[str, Any]] = {
        ns: {p.task: Classified(p.class_id, p.score) for p in r.predictions} for ns, r in log.results.items()}
    if dense:
        size = _size(frames[0])
        for ns, results in log.dense.items():
            # On the grid the server publishes them on (its dense_scale / dense_grid) -> on the frame.
            predicted.setdefault(ns, {}).update({t: to_frame(*v, size, manifest.input) for t, v in results.items()})
    return extra, predicted


def _recorded(opts: EvalOptions, manifest: Manifest, frames: list[Frame], originals: list[Frame]
              ) -> tuple[dict, dict[int, dict[str, Any]]]:
    """run_live, writing what the pipeline said into opts.record (with the source bag's
    labels of the frames replayed, so the recording can be evaluated again)."""
    from .recording import PipelineRecording, Recorder, ground_truth

    recorder = Recorder(opts.record)
    try:
        truth = ground_truth(opts.bag, {f.stamp_ns for f in originals})
        extra, predicted = run_live(opts, manifest, frames, PipelineRecording(recorder, manifest, not opts.attach, truth))
    finally:
        counts = recorder.close()  # a valid file whatever happened
    extra["recording"] = {"path": str(opts.record), "messages": counts}
    return extra, predicted


def evaluate(opts: EvalOptions) -> dict:
    manifest = load_manifest(opts.bundle)
    if opts.offline and opts.attach:
        raise MtlSplitError("--offline runs the bundle in this process, --attach uses a running pipeline: pick one")
    if opts.offline and opts.record is not None:
        raise MtlSplitError("--record writes what the ROS pipeline published; --offline publishes nothing: "
                            "drop --offline")
    if opts.record is not None and opts.record.exists():
        raise MtlSplitError(f"{opts.record} exists; remove it or choose another --record")
    bag = read_frames(opts.bag, opts.camera_topic, opts.limit)
    frames = bag.frames
    sidecar, notes = read_sidecar(opts.labels, frames) if opts.labels else ({}, [])
    truth = resolve(manifest, frames, sidecar)  # a label set for another model fails here, before any run
    if bag.restamped:
        notes.append("the camera's header stamps repeat: frames were re-stamped with their record times "
                     "(the bag's own labels, keyed by stamp, cannot be matched; use a sidecar keyed by frame)")
    size = _size(frames[0])
    baseline = image_baseline(frames)  # the camera's own frames, before any --compressed
    if opts.compressed and frames[0].msgtype != COMPRESSED:  # live and offline see the same JPEGs
        from .replay import recompress

        frames = [recompress(f) for f in frames]
    mode = "offline" if opts.offline else "live"
    if opts.offline:
        extra, predicted = run_offline(opts, manifest, frames)
    elif opts.record is not None:
        extra, predicted = _recorded(opts, manifest, frames, bag.frames)
    else:
        extra, predicted = run_live(opts, manifest, frames)
    extra["bytes_per_frame"] |= baseline
    e2e = extra.pop("e2e")
    result = {
        "mode": mode, "bag": str(opts.bag), "bundle": str(opts.bundle), "model_id": manifest.model_id,
        "camera_topic": bag.camera_topic, "image_size": list(size),
        "camera_type": frames[0].msgtype,
        "other_topics": bag.other_topics,
        "labels": {"tasks": truth.source, "sidecar": str(opts.labels) if opts.labels else None,
                   "notes": notes + truth.notes},
        "rate": "max" if opts.rate is None else opts.rate, "edge_params": opts.edge_params or {},
        "tasks": task_report(manifest, [f.stamp_ns for f in frames], truth.by_stamp, predicted,
                             size),
        **extra,
        "predictions": {str(ns): {t: v.class_id for t, v in p.items() if isinstance(v, Classified)}
                        for ns, p in predicted.items()},
        "machine": report.machine(),
    }
    report.write(opts.out, result, e2e)
    return result
