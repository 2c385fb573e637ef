"""`mtl-split bench network`: the live pipeline across an emulated robot-server link.

A camera (--rate Hz, --seconds per link profile) feeds real nodes; the link is the relay of
mtl_split_bench.link_relay (this kernel has no tc netem). Deployments, side by side in one run:

    mtl_split_float32     edge node on the robot sends the paper's float32 split tensor
    mtl_split_bottleneck  the same with a 16-channel int8 bottleneck + zstd (our compact wire)
    jpeg_to_server        the robot sends JPEG-90 frames; edge + server nodes on the server
    edge_only             edge + server nodes both on the robot: no link at all

Link profiles: 3G 1.1, 4G 5.85, Wi-Fi 18.88 Mbit/s (the split-computing literature's rates)
with an assumed one-way delay +- jitter each (50+-10, 25+-5, 2+-1 ms), times packet loss
0/1/5 %. Loss is repaired like a reliable DDS writer does (lost packets resent one round
trip later; --best-effort drops the message instead). The relay's queue holds at most 500 ms
of backlog (drop-tail). Per row: end-to-end latency percentiles (camera publish -> results
received), delivered results per second, drops, and the analytic prediction edge + bytes /
bandwidth + delay + server from the measured parts, to compare with what was measured.
Random weights at 224 px (BatchNorm statistics from rendered scenes): accuracy is bench
bandwidth's subject, this one is about time.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtl_split_tools.link_model import LINKS_MBPS, transfer_ms

from .bundles import random_bundle, task_classes
from .frames import camera_stream, rendered_frames
from .image_codecs import jpeg
from .link_relay import LinkProfile, command, netem_unavailable
from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result
from .timing import median_ms

if TYPE_CHECKING:
    from mtl_split_tools.processes import ChildProcess

ROBOT, SERVER = "/robot", "/server"
FEATURES_TYPE = "mtl_split/msg/SharedFeatures"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
# name -> (Mbit/s, one-way delay ms, jitter ms); the delays are our assumption, not the literature's.
LINKS: dict[str, tuple[float, float, float]] = {"3g": (LINKS_MBPS["3g"], 50.0, 10.0),
                                                "4g": (LINKS_MBPS["4g"], 25.0, 5.0),
                                                "wifi": (LINKS_MBPS["wifi"], 2.0, 1.0)}
LOSSES = (0.0, 0.01, 0.05)
BOTTLENECK = 16


@dataclass(frozen=True)
class Deployment:
    name: str
    bundle: Path
    nodes: list[Any]
    camera: str  # topic the camera publishes on
    compressed: bool  # camera sends JPEG CompressedImage
    results_ns: str
    relay: tuple[str, str, str] | None  # (in topic, out topic, type) across the link


def deployments(mtl: Path, bottleneck: Path) -> list[Deployment]:
    from mtl_split_ros.launch_plan import LaunchArgs, plan

    def server(bundle: Path) -> list[Any]:
        return plan("server", LaunchArgs(bundle=str(bundle.resolve()), namespace=SERVER, overrides={
            "server": {"features_topics": [f"{SERVER}/mtl_split/features"], "discover": False}}))

    def edge(bundle: Path) -> list[Any]:
        return plan("edge", LaunchArgs(bundle=str(bundle.resolve()), namespace=ROBOT,
                                       camera_topic=f"{ROBOT}/camera/image_raw"))

    features_link = (f"{ROBOT}/mtl_split/features", f"{SERVER}/mtl_split/features", FEATURES_TYPE)
    local = lambda ns, cam: plan("pipeline", LaunchArgs(  # noqa: E731
        bundle=str(mtl.resolve()), namespace=ns, camera_topic=cam,
        overrides={"server": {"features_topics": [f"{ns}/mtl_split/features"], "discover": False}}))
    jpeg_cam = f"{SERVER}/camera/image_raw/compressed"
    return [
        Deployment("mtl_split_float32", mtl, edge(mtl) + server(mtl), f"{ROBOT}/camera/image_raw", False, SERVER,
                   features_link),
        Deployment("mtl_split_bottleneck", bottleneck, edge(bottleneck) + server(bottleneck),
                   f"{ROBOT}/camera/image_raw", False, SERVER, features_link),
        Deployment("jpeg_to_server", mtl, local(SERVER, jpeg_cam), f"{ROBOT}/camera/image_raw/compressed", True,
                   SERVER, (f"{ROBOT}/camera/image_raw/compressed", jpeg_cam, COMPRESSED_TYPE)),
        Deployment("edge_only", mtl, local(ROBOT, f"{ROBOT}/camera/image_raw"), f"{ROBOT}/camera/image_raw", False,
                   ROBOT, None),
    ]


def relay_counters(relay: ChildProcess) -> dict[str, Any]:
    """Stop the link relay; the counters it prints as its last JSON line."""
    code = relay.stop(timeout=15)
    lines = [line for line in relay.log(tail=1000).splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the link relay printed no counters (exit {code}); see {relay.log_path}")
    return json.loads(lines[-1])


def analytic(row: dict[str, Any], profile: LinkProfile | None, camera_hz: float) -> dict[str, Any]:
    """The literature's model from this row's measured parts: edge + bytes/bandwidth + delay + server."""
    stages = row["latency_ms"]
    edge, server = stages["edge_compute"]["p50"] or 0.0, stages["server_compute"]["p50"] or 0.0
    if row["deployment"] == "jpeg_to_server":
        edge, server = 0.0, edge + server  # the camera sends JPEG; both models run on the server
    nbytes = row.get("link_bytes_per_message") or 0.0
    if profile is None or not nbytes:
        return {"p50_ms": round(edge + server, 3), "delivered_fps": camera_hz}
    capacity = profile.mbps * 1e6 / (8 * nbytes)
    return {"p50_ms": round(edge + transfer_ms(nbytes, profile.mbps) + profile.delay_ms + server, 3),
            "delivered_fps": round(min(camera_hz, capacity * (1 - profile.loss)), 2),
            "link_capacity_fps": round(capacity, 2)}


def run_deployment(dep: Deployment, profiles: list[LinkProfile], seconds: float, rate: float, size: int,
                   log_dir: Path) -> list[dict[str, Any]]:
    from mtl_split_tools.processes import NodeProcesses
    from mtl_split_tools.replay import replay
    from mtl_split_tools.replay_stats import replay_stats

    rows = []
    with NodeProcesses(dep.nodes, log_dir=log_dir / dep.name) as procs, \
            NodeProcesses(log_dir=log_dir / dep.name) as link:
        for i, profile in enumerate(profiles if dep.relay else [None]):
            relay = link.run(f"relay_{profile.name}", command(*dep.relay, profile, seed=i)) \
                if dep.relay and profile else None
            try:
                frames = camera_stream(size, seconds, rate, dep.camera, compressed=dep.compressed)
                log = replay(dep.results_ns, frames, rate=1.0, desc=f"{dep.name} {profile.name if profile else ''}",
                             ready_timeout=90.0, leave=False)
            finally:
                counters = relay_counters(relay) if relay else None
            procs.check_alive()
            row = {"deployment": dep.name, "link": profile.name if profile else "none",
                   **({"mbps": profile.mbps, "delay_ms": profile.delay_ms, "loss": profile.loss} if profile else {}),
                   **replay_stats(log)}
            if counters:
                row["relay"] = counters
                row["link_bytes_per_message"] = round(counters["bytes_offered"] / max(counters["offered"], 1), 1)
            row["analytic"] = analytic(row, profile, rate)
            rows.append(row)
    return rows


def profiles(names: list[str], losses: list[float], reliable: bool) -> list[LinkProfile]:
    out = []
    for name in names:
        if name not in LINKS:
            raise SystemExit(f"unknown link {name!r}; use {', '.join(LINKS)}")
        mbps, delay, jitter = LINKS[name]
        for loss in losses:
            out.append(LinkProfile(f"{name}_loss{loss:g}", mbps, delay, jitter, loss, reliable=reliable))
    return out


def run(links: list[LinkProfile], seconds: float, rate: float, size: int, work: Path,
        only: list[str] | None = None) -> dict[str, Any]:
    tasks = task_classes(3)
    mtl = random_bundle(work, "mobilenetv3_small_100", tasks, size, calibrate=True)
    bottleneck = random_bundle(work, "mobilenetv3_small_100", tasks, size, bottleneck=BOTTLENECK, calibrate=True)
    deps = [d for d in deployments(mtl, bottleneck) if not only or d.name in only]
    rows = []
    for dep in progress(deps, desc="bench network", unit="deployment"):
        rows += run_deployment(dep, links, seconds, rate, size, work / "logs" / "network")
    frame = rendered_frames(size, 1)[0]
    return {"benchmark": "network", "backbone": "mobilenetv3_small_100", "input_size": size, "camera_hz": rate,
            "seconds_per_profile": seconds, "bottleneck_channels": BOTTLENECK,
            "links": {p.name: {"mbps": p.mbps, "delay_ms": p.delay_ms, "jitter_ms": p.jitter_ms, "loss": p.loss,
                               "reliable": p.reliable, "max_queue_ms": p.max_queue_ms} for p in links},
            "jpeg90_encode_ms": round(median_ms(lambda: jpeg(frame, 90), 20), 3),
            "emulator": "mtl_split_bench.link_relay (application-level relay)",
            "tc_netem": netem_unavailable() or "available (not used: the relay runs everywhere)",
            "notes": "jpeg_to_server: the camera publishes JPEG-90 (encoding not in the latency); "
                     "edge_only runs once (no link)", "rows": rows}


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    rows = result["rows"]
    links = list(result["links"])
    deps = list(dict.fromkeys(r["deployment"] for r in rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for dep in deps:
        mine = {r["link"]: r for r in rows if r["deployment"] == dep}
        pick = (lambda l: mine.get(l) or mine.get("none"))  # noqa: E731 - edge_only: same at every link
        ax1.plot(range(len(links)), [pick(l)["latency_ms"]["end_to_end"]["p50"] or float("nan") for l in links], "o-", label=dep)
        ax2.plot(range(len(links)), [pick(l)["delivered_fps"] or 0 for l in links], "o-", label=dep)
    for ax, title in ((ax1, "end-to-end latency p50 (ms, log)"), (ax2, "delivered results / s")):
        ax.set_xticks(range(len(links)), [l.replace("_loss", "\n") for l in links], fontsize=6)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    ax1.set_yscale("log")
    ax2.axhline(result["camera_hz"], color="grey", ls="--", lw=1)
    ax2.legend(fontsize=7)
    fig.suptitle(f"{result['backbone']} {result['input_size']} px, {result['camera_hz']:g} Hz camera over the "
                 "emulated link (x: link, loss)", fontsize=9)
    return save_figure(fig, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "network")
    p.add_argument("--links", default=",".join(LINKS), help="link profiles")
    p.add_argument("--losses", default=",".join(f"{x:g}" for x in LOSSES), help="packet loss rates")
    p.add_argument("--seconds", type=float, default=None, help="camera time per profile (default 5; --full 30)")
    p.add_argument("--rate", type=float, default=10.0, help="camera Hz")
    p.add_argument("--size", type=int, default=224, help="model input and camera frame size")
    p.add_argument("--best-effort", action="store_true", help="a lost packet loses its message (no retransmission)")
    p.add_argument("--deployments", default=None, help="comma-separated subset of the deployments")


def main(args: argparse.Namespace) -> int:
    links = profiles(args.links.split(","), [float(x) for x in args.losses.split(",")], not args.best_effort)
    result = run(links, args.seconds or (30.0 if args.full else 5.0), args.rate, args.size, args.work,
                 args.deployments.split(",") if args.deployments else None)
    table = [{**r, **r["frames"], **r["latency_ms"]["end_to_end"], "model_p50": r["analytic"]["p50_ms"],
              "model_fps": r["analytic"]["delivered_fps"]} for r in result["rows"]]
    print_table(table, [("deployment", "deployment"), ("link", "link"), ("link_bytes_per_message", "B/msg"),
                        ("p50", "p50 ms"), ("p90", "p90 ms"), ("model_p50", "model p50"),
                        ("delivered_fps", "FPS"), ("model_fps", "model FPS"), ("dropped", "dropped")])
    write_result(args.out, result)
    plot(result, png_path(args.out))
    return 0

