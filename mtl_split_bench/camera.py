"""`mtl-split bench camera`: real camera frames, 640x480 to 12 MP, through the live nodes.

A camera driver in its own process (mtl_split_bench.camera_publisher) publishes rgb8 Image or
JPEG CompressedImage frames into edge + server started as `mtl-split launch pipeline` starts
them (private DDS domain on loopback; nodes restarted per row, so the edge's peak RSS is the
row's). Three sections:

- pipeline: 640x480, 1280x720, 1920x1080 at 30 Hz and 4000x3000 at 5 Hz, raw and JPEG, with
  the shipped Fast DDS profiles (config/fastdds: camera.xml for the camera, nodes.xml for the
  nodes). Per row: results/s against frames sent, end-to-end latency p50/p99 (stamp at
  publish -> MultiTaskResult received, one host clock), the drops the nodes counted by
  reason, sent - results - counted drops (must be 0), CPU ms per frame of camera, edge and
  server, and the edge's peak RSS.
- transport: 1920x1080 at 30 Hz and 4000x3000 at 5 Hz raw, through the standard fixes side
  by side: Fast DDS defaults, its LARGE_DATA builtin transports, UDP only with 4 MB socket
  buffers (this kernel's rmem_max), a reliable camera subscription, the camera's
  shared-memory segment alone (camera.xml, readers at defaults), and both shipped profiles.
  What does not arrive must still be counted.
- preprocess: decode + preprocess ms per frame at 720p, 1080p and 12 MP in this process
  (no ROS): raw rgb8 / bgr8 in each resize mode, the previous full-resolution path for
  comparison, and JPEG decoded full size vs reduced (with the model input's difference).

Writes reports/bench/camera.json and camera.png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result

NAMESPACE = "/mtl_split_camera"
CAMERA = f"{NAMESPACE}/camera/image_raw"
STREAMS = (("640x480", 30.0), ("1280x720", 30.0), ("1920x1080", 30.0), ("4000x3000", 5.0))
TRANSPORT_STREAMS = (("1920x1080", 30.0), ("4000x3000", 5.0))
FORMATS = ("raw", "jpeg")
SECTIONS = ("pipeline", "transport", "preprocess")
LOST = ("dropped", "unheard")  # what the nodes count for a frame that gave no result
CPU_SAMPLE_S = 0.2
EMPTY_PROFILE = '<?xml version="1.0"?>\n<dds xmlns="http://www.eprosima.com"><profiles/></dds>\n'
UDP_PROFILE = """<?xml version="1.0"?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors><transport_descriptor>
    <transport_id>udp</transport_id><type>UDPv4</type>
    <sendBufferSize>{size}</sendBufferSize><receiveBufferSize>{size}</receiveBufferSize>
  </transport_descriptor></transport_descriptors>
  <participant profile_name="udp" is_default_profile="true"><rtps>
    <useBuiltinTransports>false</useBuiltinTransports>
    <userTransports><transport_id>udp</transport_id></userTransports>
  </rtps></participant>
</profiles></dds>
"""


@dataclass(frozen=True)
class Transport:
    """One way of configuring DDS: the camera's environment, the nodes' profile and extra
    environment, and edge parameters."""

    name: str
    camera_profile: str  # an XML file
    nodes_profile: str  # LaunchArgs.dds_profile
    env: dict[str, str] = field(default_factory=dict)  # for camera and nodes alike
    edge: dict[str, Any] = field(default_factory=dict)


def transports(work: Path) -> list[Transport]:
    from mtl_split_ros.launch_plan import dds_profile_path

    work.mkdir(parents=True, exist_ok=True)
    empty, udp = work / "fastdds_defaults.xml", work / "fastdds_udp_4mb.xml"
    empty.write_text(EMPTY_PROFILE)
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text()) if Path("/proc/sys/net/core/rmem_max").exists() else 4 << 20
    udp.write_text(UDP_PROFILE.format(size=min(rmem_max, 64 << 20)))
    camera = str(dds_profile_path("camera"))
    return [
        Transport("Fast DDS defaults", str(empty), str(empty)),
        Transport("LARGE_DATA builtin transports", str(empty), str(empty), {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}),
        Transport(f"UDP only, {rmem_max >> 20} MB socket buffers", str(udp), str(udp)),
        Transport("reliable camera subscription", str(empty), str(empty), edge={"image_qos_reliability": "reliable"}),
        Transport("camera.xml only (readers at defaults)", camera, str(empty)),
        Transport("camera.xml + nodes.xml (shipped)", camera, "nodes"),
    ]


def shipped() -> Transport:
    from mtl_split_ros.launch_plan import dds_profile_path

    return Transport("camera.xml + nodes.xml (shipped)", str(dds_profile_path("camera")), "nodes")


def _cpu_s(proc: Any) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the process's peak resident memory since it started (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _at(samples: list[tuple[float, float]], t: float) -> float:
    """A cumulative CPU time at wall time t, interpolated between samples."""
    times, values = zip(*samples)
    return float(np.interp(t, times, values))


def _counters(node_counters: dict[str, dict[str, str]], name: str) -> dict[str, int]:
    c = node_counters.get(f"{NAMESPACE}/{name}", {})
    return {k: int(float(v)) for k, v in c.items() if k in LOST or k.startswith("dropped.")}


def run_row(bundle: Path, transport: Transport, size: str, rate: float, fmt: str, seconds: float,
            log_dir: Path) -> dict[str, Any]:
    import psutil

    from mtl_split_core.camera_messages import COMPRESSED, IMAGE
    from mtl_split_ros.launch_plan import LaunchArgs, dds_environment, plan
    from mtl_split_tools.bags import TYPESTORE, Frame, image_message
    from mtl_split_tools.processes import NodeProcesses
    from mtl_split_tools.replay import Replayer

    from mtl_split_edge.node import DISCOVERY_GRACE_S

    topic = CAMERA + ("/compressed" if fmt == "jpeg" else "")
    msgtype = COMPRESSED if fmt == "jpeg" else IMAGE
    warm = image_message(np.full((64, 64, 3), 128, np.uint8), 0, "warm", fmt == "jpeg")
    warm = Frame(0, "warm", topic, msgtype, bytes(TYPESTORE.serialize_cdr(warm, msgtype)), {})
    nodes = plan("pipeline", LaunchArgs(
        bundle=str(bundle.resolve()), camera_topic=topic, namespace=NAMESPACE, dds_profile=transport.nodes_profile,
        overrides={"edge": transport.edge,
                   "server": {"features_topics": [f"{NAMESPACE}/mtl_split/features"], "discover": False}}))
    nodes = [replace(n, environment=n.environment + tuple(transport.env.items())) for n in nodes]
    out = log_dir / "camera.json"
    load = [round(os.getloadavg()[0], 2)]
    with NodeProcesses(nodes, log_dir=log_dir) as procs, \
            Replayer(NAMESPACE, topic, msgtype, watch_features=False) as watch:
        watch.wait_ready(warm, timeout=90)
        answered = _listen_results(watch)
        watch.spin_for(DISCOVERY_GRACE_S + 0.5)  # the edge knows its publishers: the camera will be a new one
        watch.spin_for(2.5)  # two /diagnostics periods: counters settled
        before = {k: _counters(watch.log.node_counters, n.spec.name) for k, n in zip(("edge", "server"), nodes)}
        pids = {key.split(":")[0]: psutil.Process(p.pid) for key, p in procs.procs.items()}
        camera = procs.run("camera", [sys.executable, "-m", "mtl_split_bench.camera_publisher", "--topic", topic,
                                      "--results-topic", f"{NAMESPACE}/mtl_split/results", "--size", size,
                                      "--format", fmt, "--rate", str(rate), "--seconds", str(seconds),
                                      "--out", str(out)],
                           env={**dds_environment(transport.camera_profile), **transport.env})
        cpu: dict[str, list[tuple[float, float]]] = {k: [] for k in pids}
        while camera.alive:
            for k, p in pids.items():
                cpu[k].append((time.time(), _cpu_s(p)))
            watch.spin_for(CPU_SAMPLE_S)
        if camera.returncode != 0:
            raise RuntimeError(f"the camera process failed ({camera.returncode}):\n{camera.log()}")
        watch.spin_for(2.5)
        dead = {k: c for k, c in procs.dead().items() if k != camera.label}
        if dead:
            raise RuntimeError(f"node process(es) exited: {dead}; see the logs in {log_dir}")
        after = {k: _counters(watch.log.node_counters, n.spec.name) for k, n in zip(("edge", "server"), nodes)}
        peak = _peak_rss_mb(pids["edge"].pid)
    load.append(round(os.getloadavg()[0], 2))
    sent = json.loads(out.read_text())
    return _row_stats(transport, size, rate, fmt, sent, answered, before, after, cpu, peak) | {"load_1min": load}


def _listen_results(watch: Any) -> dict[int, float]:
    """stamp -> wall time its MultiTaskResult arrived, for every result (the camera's stamps
    are not the driver's own)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from mtl_split.msg import MultiTaskResult
    from mtl_split_core.stamps import to_ns

    answered: dict[int, float] = {}
    watch.node.create_subscription(MultiTaskResult, f"{NAMESPACE}/mtl_split/results",
                                   lambda m: answered.setdefault(to_ns(m.header.stamp), time.time()),
                                   QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    return answered


def _row_stats(transport: Transport, size: str, rate: float, fmt: str, sent: dict[str, Any],
               answered: dict[int, float], before: dict, after: dict, cpu: dict, peak: float | None
               ) -> dict[str, Any]:
    from mtl_split_tools.metrics import percentiles

    stamps = sent["stamps"]
    streamed = stamps[: sent["streamed"]]
    results = sum(ns in answered for ns in stamps)
    e2e = [answered[ns] * 1e3 - ns / 1e6 for ns in streamed if ns in answered]
    delta = {node: {k: after[node].get(k, 0) - before[node].get(k, 0) for k in after[node]} for node in after}
    counted = sum(delta[node].get(k, 0) for node in delta for k in LOST)
    t0, t1 = sent["stream_wall_s"]
    cpu_ms = {k: round((_at(s, t1) - _at(s, t0)) * 1e3 / len(streamed), 2) if len(s) > 1 else None
              for k, s in cpu.items()}
    reasons = {f"{node}.{k.removeprefix('dropped.')}": v for node in delta for k, v in delta[node].items()
               if k.startswith("dropped.") and v} | {f"{node}.unheard": delta[node]["unheard"]
                                                      for node in delta if delta[node].get("unheard")}
    return {
        "transport": transport.name, "size": size, "format": fmt, "camera_hz": rate,
        "bytes_per_frame": sent["bytes_per_frame"], "sent": len(stamps), "streamed": len(streamed),
        "tail": sent["tail"], "results": results, "counted_drops": counted,
        "unaccounted": len(stamps) - results - counted, "drops_by_reason": reasons,
        "results_per_s": round(len(e2e) * rate / len(streamed), 2),
        "latency_ms": percentiles(e2e), "cpu_ms_per_frame": {**cpu_ms, "camera": round(sent["cpu_s"] * 1e3 / len(streamed), 2)},
        "edge_peak_rss_mb": peak,
    }


def preprocess_costs(spec_size: int, runs: int) -> list[dict[str, Any]]:
    """Decode + preprocess ms per frame in this process, no ROS."""
    import cv2

    from mtl_split_core.bundle import RESIZE_MODES, InputSpec
    from mtl_split_core.camera_messages import COMPRESSED, IMAGE, parse
    from mtl_split_core.imaging import decode
    from mtl_split_core.preprocess import preprocess
    from mtl_split_tools.bags import TYPESTORE, image_message

    from .camera_publisher import scenes
    from .timing import median_ms

    spec = InputSpec(width=spec_size, height=spec_size)
    rows = []
    for size in ("1280x720", "1920x1080", "4000x3000"):
        w, h = (int(v) for v in size.split("x"))
        rgb = scenes(w, h, 1)[0]
        raw = bytes(TYPESTORE.serialize_cdr(image_message(rgb, 0, "c", False), IMAGE))
        jpeg = bytes(TYPESTORE.serialize_cdr(image_message(rgb, 0, "c", True), COMPRESSED))
        bgr_msg = parse(raw, IMAGE)
        bgr_msg.encoding = "bgr8"  # same bytes read as bgr8: what a bgr8 camera costs

        def run(msg, s: InputSpec, reduce: bool = False) -> np.ndarray:
            return preprocess([decode(msg, reduce_for=s if reduce else None)], s)

        def previous_path(msg) -> np.ndarray:  # the full-resolution path this replaced
            full = np.ascontiguousarray(np.frombuffer(msg.data, np.uint8).reshape(h, w, 3).copy())
            small = cv2.resize(full, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
            return small.astype(np.float32)

        row: dict[str, Any] = {"size": size}
        msg = parse(raw, IMAGE)
        row["previous_full_res_ms"] = round(median_ms(lambda: previous_path(msg), runs), 2)
        for mode in RESIZE_MODES:
            s = replace(spec, resize_mode=mode)
            row[f"rgb8_{mode}_ms"] = round(median_ms(lambda: run(msg, s), runs), 2)
        row["bgr8_resize_ms"] = round(median_ms(lambda: run(bgr_msg, spec), runs), 2)
        jmsg = parse(jpeg, COMPRESSED)
        row["jpeg_bytes"] = len(jpeg)
        row["jpeg_full_ms"] = round(median_ms(lambda: run(jmsg, spec), runs), 2)
        row["jpeg_reduced_ms"] = round(median_ms(lambda: run(jmsg, spec, True), runs), 2)
        row["jpeg_reduction"] = round(w / decode(jmsg, reduce_for=spec).image.shape[1])
        diff = np.abs(run(jmsg, spec) - run(jmsg, spec, True)) * np.asarray(spec.std, np.float32)[:, None, None] * 255
        row["jpeg_reduced_input_diff_mean"] = round(float(diff.mean()), 2)  # grey levels
        row["jpeg_reduced_input_diff_p99"] = round(float(np.percentile(diff, 99)), 2)
        rows.append(row)
    return rows


def run(bundle: Path, sections: tuple[str, ...], seconds: float, work: Path, runs: int,
        sizes: tuple[str, ...] = (), formats: tuple[str, ...] = FORMATS) -> dict[str, Any]:
    from mtl_split_core.bundle import load_manifest

    result: dict[str, Any] = {"benchmark": "camera", "bundle": str(bundle), "seconds": seconds,
                              "input_size": load_manifest(bundle).input.width,
                              "latency": "camera publish (stamp) -> MultiTaskResult received, one host clock"}
    jobs = []
    if "pipeline" in sections:
        jobs += [("pipeline", shipped(), size, rate, fmt) for size, rate in STREAMS for fmt in formats
                 if not sizes or size in sizes]
    if "transport" in sections:
        jobs += [("transport", t, size, rate, "raw") for t in transports(work / "dds") for size, rate in TRANSPORT_STREAMS
                 if not sizes or size in sizes]
    for section, transport, size, rate, fmt in progress(jobs, desc="bench camera", unit="row"):
        log_dir = work / "logs" / "camera" / f"{section}_{len(result.get(section, []))}"
        result.setdefault(section, []).append(run_row(bundle, transport, size, rate, fmt, seconds, log_dir))
    if "preprocess" in sections:
        result["preprocess"] = preprocess_costs(result["input_size"], runs)
    return result


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    panels = [s for s in SECTIONS if result.get(s)]
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.6 * len(panels)), squeeze=False)
    for (ax1, ax2), section in zip(axes, panels):
        if section == "preprocess":
            _plot_preprocess(result["preprocess"], ax1, ax2)
            continue
        rows = result[section]
        labels = [f"{r['size']} {r['format']}" if section == "pipeline" else
                  f"{r['transport']}\n{r['size']}" for r in rows]
        x = np.arange(len(rows))
        sent = np.array([r["camera_hz"] for r in rows])
        got = np.array([r["results_per_s"] for r in rows])
        drops = np.array([r["counted_drops"] / r["sent"] for r in rows]) * sent
        ax1.bar(x, got, color="tab:green", label="results/s")
        ax1.bar(x, drops, bottom=got, color="tab:orange", label="counted drops/s")
        ax1.plot(x, sent, "k_", ms=18, label="frames sent/s")
        ax1.set_title(f"{section}: results and counted drops per second", fontsize=9)
        ax1.legend(fontsize=7)
        for key, color in (("p50", "tab:blue"), ("p99", "tab:red")):
            ax2.plot(x, [r["latency_ms"][key] or np.nan for r in rows], "o", color=color, label=key)
        ax2.axhline(50, color="grey", ls="--", lw=1, label="50 ms")
        ax2.set_yscale("log")
        ax2.set_title("end-to-end latency (ms)", fontsize=9)
        ax2.legend(fontsize=7)
        for ax in (ax1, ax2):
            ax.set_xticks(x, labels, fontsize=6, rotation=30 if section == "pipeline" else 60, ha="right")
            ax.grid(alpha=0.3)
    fig.suptitle(f"camera frames through the live nodes ({result['seconds']:g} s per row, model input "
                 f"{result['input_size']} px)", fontsize=9)
    return save_figure(fig, path)


def _plot_preprocess(rows: list[dict[str, Any]], ax1: Any, ax2: Any) -> None:
    raw = ["previous_full_res_ms", "rgb8_resize_ms", "rgb8_center_crop_ms", "rgb8_letterbox_ms", "bgr8_resize_ms"]
    jpeg = ["jpeg_full_ms", "jpeg_reduced_ms"]
    for ax, keys, title in ((ax1, raw, "raw frame -> model input"), (ax2, jpeg, "JPEG -> model input")):
        x = np.arange(len(rows))
        width = 0.8 / len(keys)
        for i, k in enumerate(keys):
            ax.bar(x + i * width, [r[k] for r in rows], width, label=k.removesuffix("_ms"))
        ax.set_xticks(x + 0.4 - width / 2, [r["size"] for r in rows], fontsize=7)
        ax.set_ylabel("ms per frame")
        ax.set_title(f"preprocess: {title}", fontsize=9)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "camera")
    p.add_argument("--bundle", type=Path,
                   help="bundle to run (default: the untrained 224x224 mobilenetv3_small_100 of bench pipeline)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)}")
    p.add_argument("--seconds", type=float, help="camera stream per row (default 10; --full 30)")
    p.add_argument("--runs", type=int, default=20, help="preprocess: timed runs per figure")
    p.add_argument("--sizes", default="", help="only these camera sizes, e.g. 1920x1080,4000x3000 (default: all of "
                   + ", ".join(size for size, _ in STREAMS) + ")")
    p.add_argument("--formats", default=",".join(FORMATS), help=f"pipeline rows of these formats: any of {', '.join(FORMATS)}")


def main(args: argparse.Namespace) -> int:
    from mtl_split_core.errors import MtlSplitError

    from .pipeline import default_bundle

    sections = tuple(s for s in args.sections.split(",") if s)
    if set(sections) - set(SECTIONS):
        raise MtlSplitError(f"--sections {args.sections!r}: use any of {', '.join(SECTIONS)}")
    sizes = tuple(s for s in args.sizes.split(",") if s)
    formats = tuple(f for f in args.formats.split(",") if f)
    known = {size for size, _ in STREAMS}
    if set(sizes) - known or not formats or set(formats) - set(FORMATS):
        raise MtlSplitError(f"--sizes {args.sizes!r} --formats {args.formats!r}: sizes are any of {', '.join(sorted(known))}, "
                            f"formats any of {', '.join(FORMATS)}")
    bundle = args.bundle or default_bundle(args.work)
    result = run(bundle, sections, args.seconds or (30.0 if args.full else 10.0), args.work, args.runs, sizes, formats)
    columns = [("transport", "transport"), ("size", "size"), ("format", "fmt"), ("camera_hz", "Hz"),
               ("sent", "sent"), ("results", "results"), ("counted_drops", "counted"), ("unaccounted", "uncounted"),
               ("results_per_s", "results/s"), ("p50", "p50 ms"), ("p99", "p99 ms"), ("edge_cpu", "edge ms CPU"),
               ("server_cpu", "server ms CPU"), ("camera_cpu", "camera ms CPU"), ("edge_peak_rss_mb", "edge peak MB")]
    for section in ("pipeline", "transport"):
        if result.get(section):
            print(f"\n{section}:")
            print_table([{**r, **r["latency_ms"], **{f"{k}_cpu": v for k, v in r["cpu_ms_per_frame"].items()}}
                         for r in result[section]], columns)
    if result.get("preprocess"):
        print("\npreprocess (ms per frame, this process):")
        print_table(result["preprocess"], [(k, k.removesuffix("_ms")) for k in result["preprocess"][0]])
    write_result(args.out, result)
    plot(result, png_path(args.out))
    rows = result.get("pipeline", []) + result.get("transport", [])
    return 0 if all(r["unaccounted"] == 0 for r in rows) else 1
