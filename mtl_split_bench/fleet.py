"""`mtl-split bench fleet`: how many robots at camera rate one server process serves, and
what a second shard adds.

N robots (one process publishing real SharedFeatures on N features topics at --rate Hz,
mtl_split_bench.fleet_robots) against 1 server process and against 2 (`shard` 0/2 and 1/2,
started as `mtl-split launch server` does, discovering the robots). For each fleet size and
shard count: results delivered per second against frames offered, latency p50/p99
(publish -> result, one clock), CPU (cores, and ms per result) and RSS of every server
process, plus the publisher's own CPU. Runs alternate 1 and 2 shards at each fleet size and
repeat (--repeat), so the 2-shard / 1-shard ratio is measured side by side under the same
machine load; the load average is recorded with every run (the machine is shared).

Writes reports/bench/fleet.json and fleet.png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result

SIZE = 64  # input size of the default bundle: small features (576x2x2), cheap heads - the server's per-frame cost shows


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "fleet")
    p.add_argument("--bundle", type=Path, help="bundle to serve (default: random mobilenetv3_small_100, "
                                               f"{SIZE}x{SIZE}, 2 tasks, built once under --work)")
    p.add_argument("--robots", default=None, help="fleet sizes, e.g. 16,32,64 (default 32,64; --full 16,32,48,64,96,128)")
    p.add_argument("--shards", default="1,2", help="server process counts to compare")
    p.add_argument("--rate", type=float, default=30.0, help="frames per second per robot")
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    p.add_argument("--warmup-s", type=float, default=3.0, help="publishing before the window, per run")
    p.add_argument("--repeat", type=int, default=1, help="runs per (fleet size, shards), alternating")
    p.add_argument("--dtype", default="int8", help="wire dtype of the robots' features (empty: the bundle's)")
    p.add_argument("--server-param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra server parameter, e.g. max_batch=16")


def _server_params(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        name, _, value = item.partition("=")
        out[name] = yaml.safe_load(value)
    return out


def run_once(bundle: Path, robots: int, shards: int, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """One fleet against `shards` server processes: the publisher's stats + each server's CPU and RSS."""
    import psutil

    from mtl_split_ros.launch_plan import LaunchArgs, plan
    from mtl_split_tools.processes import NodeProcesses

    stats_path = log_dir / "robots.json"
    load_before = os.getloadavg()
    with NodeProcesses(log_dir=log_dir) as procs:
        servers = []
        for i in range(shards):
            [node] = plan("server", LaunchArgs(bundle=str(bundle.resolve()), overrides={"server": {
                "shard": f"{i}/{shards}", "discover": True, **_server_params(args.server_param)}}))
            servers.append(psutil.Process(procs.add(node).pid))
        robots_cmd = [sys.executable, "-m", "mtl_split_bench.fleet_robots", "--bundle", str(bundle), "--robots",
                      str(robots), "--rate", str(args.rate), "--seconds", str(args.seconds), "--warmup-s",
                      str(args.warmup_s), "--out", str(stats_path), *(["--dtype", args.dtype] if args.dtype else [])]
        publisher = procs.run("robots", robots_cmd)
        # The measured window starts after the publisher's matching and warm-up: sample the
        # servers' CPU from the first frames on and keep the samples that fall in the window.
        samples: list[tuple[float, list[float]]] = []
        while publisher.alive:
            samples.append((time.monotonic(), [sum(s.cpu_times()[:2]) for s in servers]))
            rss = [s.memory_info().rss / 2**20 for s in servers]
            time.sleep(0.5)
        if publisher.returncode != 0 or not stats_path.is_file():
            raise RuntimeError(f"the robots' process failed (exit {publisher.returncode}):\n{procs.logs()}")
        stats = json.loads(stats_path.read_text())
        dead = {k: c for k, c in procs.dead().items() if k != "robots"}
        if dead:
            raise RuntimeError(f"server process(es) exited during the run: {dead}\n{procs.logs()}")
    end = samples[-1][0] - 1.0  # the publisher spins 1 s after its window
    start = end - stats["window_s"]
    inside = [s for s in samples if start <= s[0] <= end] or samples[-2:]
    cores = [(inside[-1][1][i] - inside[0][1][i]) / max(inside[-1][0] - inside[0][0], 1e-9) for i in range(shards)]
    # CPU per result: what the machine's load changes least (a busy machine lowers the cores a
    # server gets, so results/s, but hardly what each result costs).
    per_result = 1e3 * sum(cores) / stats["delivered_per_s"] if stats["delivered_per_s"] else None
    return {**stats, "shards": shards, "server_cpu_cores": [round(c, 3) for c in cores],
            "server_cpu_ms_per_result": round(per_result, 3) if per_result else None,
            "server_rss_mb": [round(r, 1) for r in rss], "dropped_per_s": round(stats["offered_per_s"] -
                                                                               stats["delivered_per_s"], 2),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()]}


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fleet size: delivered/s of 2 shards over 1 shard, from runs made side by side."""
    out = []
    for robots in sorted({r["robots"] for r in rows}):
        one = [r["delivered_per_s"] for r in rows if r["robots"] == robots and r["shards"] == 1]
        two = [r["delivered_per_s"] for r in rows if r["robots"] == robots and r["shards"] == 2]
        if one and two:
            out.append({"robots": robots, "offered_per_s": robots * rows[0]["rate_hz"],
                        "delivered_1_shard": float(np.median(one)), "delivered_2_shards": float(np.median(two)),
                        "ratio_2_over_1": round(float(np.median(two)) / max(float(np.median(one)), 1e-9), 3)})
    return out


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    rows = result["runs"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for shards, color in ((1, "tab:blue"), (2, "tab:orange")):
        mine = sorted((r for r in rows if r["shards"] == shards), key=lambda r: r["robots"])
        if not mine:
            continue
        x = [r["offered_per_s"] for r in mine]
        axes[0].plot(x, [r["delivered_per_s"] for r in mine], "o-", color=color, label=f"{shards} server process(es)")
        axes[1].plot(x, [r["latency_ms"]["p50"] for r in mine], "o-", color=color, label=f"{shards}: p50")
        axes[1].plot(x, [r["latency_ms"]["p99"] for r in mine], "s--", color=color, label=f"{shards}: p99")
        axes[2].plot(x, [r["server_cpu_ms_per_result"] for r in mine], "o-", color=color,
                     label=f"{shards} server(s)")
    lim = max(r["offered_per_s"] for r in rows) * 1.05
    axes[0].plot([0, lim], [0, lim], color="grey", ls=":", lw=1, label="delivered = offered")
    axes[0].set_xlabel("offered frames/s (robots x rate)")
    axes[0].set_ylabel("delivered results/s")
    axes[1].set_xlabel("offered frames/s")
    axes[1].set_ylabel("latency ms")
    axes[1].set_yscale("log")
    axes[2].set_xlabel("offered frames/s")
    axes[2].set_ylabel("server CPU ms per result")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    load = result["load_average_at_start"]
    fig.suptitle(f"fleet at {result['rate_hz']:g} Hz per robot, {result['cpus']} cores, load average "
                 f"{load[0]:.1f} at start (shared machine)", fontsize=9)
    return save_figure(fig, path)


def main(args: argparse.Namespace) -> int:
    from mtl_split_core.errors import MtlSplitError

    from .bundles import random_bundle, task_classes

    bundle = args.bundle or random_bundle(args.work, "mobilenetv3_small_100", task_classes(2), SIZE)
    if not (Path(bundle) / "manifest.json").is_file():
        raise MtlSplitError(f"{bundle} is not a model bundle (no manifest.json)")
    sizes = [int(n) for n in (args.robots or ("16,32,48,64,96,128" if args.full else "32,64")).split(",")]
    shard_counts = [int(s) for s in args.shards.split(",")]
    log_root = args.out.with_suffix("") / "logs"
    load_start = [round(v, 2) for v in os.getloadavg()]
    rows = []
    plan = [(n, s, k) for n in sizes for k in range(args.repeat) for s in (shard_counts if k % 2 == 0
                                                                          else shard_counts[::-1])]
    for robots, shards, k in progress(plan, desc="fleet runs", unit="run"):
        row = run_once(Path(bundle), robots, shards, args, log_root / f"r{robots}_s{shards}_{k}")
        rows.append(row)
        print(f"  {robots} robots, {shards} server(s): {row['delivered_per_s']:.0f}/{row['offered_per_s']:.0f} "
              f"results/s, p50 {row['latency_ms']['p50']} ms, p99 {row['latency_ms']['p99']} ms, server CPU "
              f"{row['server_cpu_cores']} cores, load {row['load_average_after'][0]}", flush=True)
    print_table(rows, [("robots", "robots"), ("shards", "servers"), ("offered_per_s", "offered/s"),
                       ("delivered_per_s", "delivered/s"), ("latency_ms", "latency ms"),
                       ("server_cpu_cores", "server cores"), ("server_cpu_ms_per_result", "CPU ms/result"),
                       ("server_rss_mb", "server RSS MB"),
                       ("publisher_cpu_cores", "publisher cores"), ("load_average_after", "load")])
    side_by_side = ratios(rows)
    if side_by_side:
        print("2 shards / 1 shard, delivered results/s (runs side by side):")
        print_table(side_by_side, [("robots", "robots"), ("offered_per_s", "offered/s"),
                                   ("delivered_1_shard", "1 shard"), ("delivered_2_shards", "2 shards"),
                                   ("ratio_2_over_1", "ratio")])
    result = {"benchmark": "fleet", "bundle": str(bundle), "rate_hz": args.rate, "seconds": args.seconds,
              "dtype": args.dtype, "server_params": _server_params(args.server_param), "cpus": os.cpu_count(),
              "load_average_at_start": load_start, "runs": rows, "ratios": side_by_side}
    write_result(args.out, result)
    plot(result, png_path(args.out))
    return 0
