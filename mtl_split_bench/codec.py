"""`mtl-split bench codec`: what the wire costs, without any model.

A publisher process encodes feature tensors of a few sizes and publishes SharedFeatures over
loopback DDS; this process receives and decodes them. Per size and codec we report
encode -> publish -> receive -> decode latency (p50/p90/p99, paced so nothing queues) and
sustained throughput (published flat out, reliable, depth 100). Both processes run on one
machine, so their clocks agree and one-way latency is measurable.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mtl_split_core import codec
from mtl_split_core.stamps import set_ns, to_ns

from .output import REPORT_DIR, png_path, print_table, progress, pyplot, save_figure, write_result

SIZES_KB = (1, 32, 256)
CASES = (("float32", "none"), ("float16", "none"), ("int8", "zstd"), ("int8", "lz4"))
TOPIC = "/mtl_split_bench/features"


def _tensor(size_kb: int) -> np.ndarray:
    """ReLU-like features whose float32 size is size_kb KiB: shape (C, 8, 8)."""
    channels = max(1, size_kb * 1024 // (4 * 64))
    x = np.random.default_rng(size_kb).standard_normal((channels, 8, 8)).astype(np.float32)
    return np.maximum(x, 0)


def _qos(depth: int):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def publisher(size_kb: int, dtype: str, c: str, count: int, rate_hz: float) -> None:
    """Child process: wait for the subscriber, then publish `count` messages (rate 0 = flat out)."""
    from mtl_split.msg import SharedFeatures
    from mtl_split_tools.driver import DriverNode

    driver = DriverNode("bench_codec_publisher")
    pub = driver.node.create_publisher(SharedFeatures, TOPIC, _qos(100))
    driver.wait_for(pub.get_subscription_count, 60, "the benchmark's subscriber")
    time.sleep(0.5)
    x = _tensor(size_kb)
    period = 1.0 / rate_hz if rate_hz > 0 else 0.0
    next_t = time.perf_counter()
    for i in range(count):
        t0 = time.time_ns()  # before encode: latency includes the codec on both sides
        msg = SharedFeatures()
        msg.header.frame_id = str(i)
        set_ns(msg.header.stamp, t0)
        codec.to_message(codec.encode(x, dtype, c), msg)
        while True:  # reliable + flat out: a full history pushes back; wait, never drop
            try:
                pub.publish(msg)
                break
            except RuntimeError:  # rclpy's RCLError: "cannot publish data" after blocking
                time.sleep(0.001)
        if period:
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
    driver.spin_for(1.5)  # let reliable delivery finish before leaving
    driver.close()


def _receive(size_kb: int, dtype: str, c: str, count: int, rate_hz: float, timeout: float) -> dict:
    from mtl_split.msg import SharedFeatures
    from mtl_split_tools.driver import DriverNode
    from mtl_split_tools.processes import NodeProcesses

    lat_ms: list[float] = []
    wire: list[int] = []
    first_last = [0.0, 0.0]

    def on_msg(msg: SharedFeatures) -> None:
        codec.decode(codec.from_message(msg))
        now = time.time_ns()
        sent = to_ns(msg.header.stamp)
        lat_ms.append((now - sent) / 1e6)
        wire.append(len(msg.data))
        first_last[0] = first_last[0] or time.perf_counter()
        first_last[1] = time.perf_counter()

    with DriverNode("bench_codec_subscriber") as driver, NodeProcesses() as procs:
        driver.node.create_subscription(SharedFeatures, TOPIC, on_msg, _qos(100))
        child = procs.run("bench_codec_publisher", [sys.executable, "-m", "mtl_split_bench.codec", "--publisher",
                                                    str(size_kb), dtype, c, str(count), str(rate_hz)])
        driver.spin_until(lambda: len(lat_ms) >= count or not child.alive, timeout)
        if child.wait(timeout=30) != 0:
            raise RuntimeError(f"bench publisher exited with {child.returncode}")
    span = first_last[1] - first_last[0]
    lat = np.array(lat_ms) if lat_ms else np.array([np.nan])
    return {
        "received": len(lat_ms), "sent": count,
        "wire_bytes": int(np.median(wire)) if wire else 0,
        "latency_ms": {p: round(float(np.percentile(lat, q)), 3) for p, q in (("p50", 50), ("p90", 90), ("p99", 99))},
        "msgs_per_s": round((len(lat_ms) - 1) / span, 1) if span > 0 else None,
    }


def run(out: Path, latency_count: int = 300, throughput_count: int = 1000) -> dict:
    rows = []
    for size_kb in progress(SIZES_KB, desc="bench codec", unit="size"):
        for dtype, c in CASES:
            paced = _receive(size_kb, dtype, c, latency_count, rate_hz=200.0, timeout=60)
            flat = _receive(size_kb, dtype, c, throughput_count, rate_hz=0.0, timeout=60)
            rows.append({"tensor_kb": size_kb, "dtype": dtype, "codec": c, "wire_bytes": paced["wire_bytes"],
                         "latency_ms": paced["latency_ms"], "p50_ms": paced["latency_ms"]["p50"],
                         "p99_ms": paced["latency_ms"]["p99"], "paced_received": paced["received"],
                         "throughput_msgs_per_s": flat["msgs_per_s"],
                         "throughput_received": flat["received"], "throughput_sent": flat["sent"]})
    result = {"benchmark": "codec", "topic": TOPIC, "paced_rate_hz": 200.0, "rows": rows}
    print_table(rows, [("tensor_kb", "tensor KB"), ("dtype", "dtype"), ("codec", "codec"),
                       ("wire_bytes", "wire B"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                       ("throughput_msgs_per_s", "msg/s")])
    write_result(out, result)
    _plot(rows, png_path(out))
    return result


def _plot(rows: list[dict], path: Path) -> None:
    """Latency (p50 bar, p99 tick) and throughput per tensor size and wire format."""
    plt = pyplot()
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(10, 3.4))
    labels = [f"{r['tensor_kb']}KB {r['dtype']}/{r['codec']}" for r in rows]
    x = np.arange(len(rows))
    lat.bar(x, [r["p50_ms"] for r in rows], label="p50")
    lat.plot(x, [r["p99_ms"] for r in rows], "k_", markersize=12, label="p99")
    lat.set_ylabel("encode+publish+receive+decode ms")
    thr.bar(x, [r["throughput_msgs_per_s"] or 0 for r in rows], color="tab:green")
    thr.set_ylabel("messages/s (reliable, flat out)")
    for ax in (lat, thr):
        ax.set_xticks(x, labels, fontsize=7, rotation=60, ha="right")
    lat.legend()
    fig.suptitle("SharedFeatures over loopback DDS")
    save_figure(fig, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=REPORT_DIR / "codec.json", help="result JSON (PNG beside it)")
    p.add_argument("--count", type=int, default=300, help="paced messages per case (latency)")
    p.add_argument("--flat-count", type=int, default=1000, help="flat-out messages per case (throughput)")


def main(args: argparse.Namespace) -> int:
    run(args.out, args.count, args.flat_count)
    return 0


if __name__ == "__main__":  # the publisher child of _receive(); users run `mtl-split bench codec`
    s, d, c, n, r = sys.argv[2:7]
    publisher(int(s), d, c, int(n), float(r))
