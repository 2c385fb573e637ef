"""`mtl-split plan`: which split point and wire format give the lowest end-to-end latency on
a given link, from the measurements of `mtl-split bench split` (reports/bench/split.json).

Latency model of the split-computing literature, with every term measured on this machine:
edge (preprocess + backbone part + encode) + bytes / bandwidth + one-way delay + server
(decode + rest of the backbone + heads) / server speed-up. Two more deployments compete:
JPEG-90 frames to a server that runs the whole model, and the whole model on the edge.
Candidates over --edge-ms, or losing more than --max-loss accuracy points against float32
at the same split (where accuracy was measured), are ruled out.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mtl_split_core.errors import MtlSplitError

from .link_model import transfer_ms

# Where `mtl-split bench split` writes its measurements (its default --out).
DEFAULT_REPORT = Path("reports/bench/split.json")


def load_measurement(report: Path, backbone: str, size: int) -> dict[str, Any]:
    """The split.json entry for this backbone and input size (trained weights preferred)."""
    if not report.is_file():
        raise MtlSplitError(f"{report} does not exist; run `mtl-split bench split --backbones {backbone} "
                            f"--size {size}` first")
    try:
        measured = json.loads(report.read_text())["measurements"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise MtlSplitError(f"{report} is not a `mtl-split bench split` report ({e}); run the benchmark again") from e
    found = [m for m in measured if m["backbone"] == backbone and m["input_size"] == size]
    if not found:
        have = ", ".join(sorted({f"{m['backbone']}@{m['input_size']}" for m in measured}))
        raise MtlSplitError(f"{report} has no measurement of {backbone} at {size} px (it has {have}); run "
                            f"`mtl-split bench split --backbones {backbone} --size {size}`")
    return max(found, key=lambda m: m["accuracy_measured"])


def _mean(acc: dict[str, float] | None) -> float | None:
    return sum(acc.values()) / len(acc) if acc else None


def candidates(m: dict[str, Any], mbps: float, delay_ms: float = 0.0, server_speedup: float = 1.0
               ) -> list[dict[str, Any]]:
    """Every deployment with its latency terms (ms), bytes and mean accuracy (None: not measured)."""
    img = m["image"]
    out = []
    for r in m["rows"]:
        ref = _mean(r["codecs"]["float32"]["accuracy"])
        for name, c in r["codecs"].items():
            out.append({"deployment": f"split after {r['split_point']} (k={r['split_index']}), {name}",
                        "split_index": r["split_index"], "codec": name, "bytes": c["message_bytes"],
                        "edge_ms": img["preprocess_ms"] + r["edge_ms"] + c["encode_ms"],
                        "link_ms": transfer_ms(c["message_bytes"], mbps) + delay_ms,
                        "server_ms": (c["decode_ms"] + r["server_ms"]) / server_speedup,
                        "accuracy": _mean(c["accuracy"]), "float32_accuracy": ref})
    out.append({"deployment": "JPEG-90 to the server, whole model there", "split_index": None, "codec": "jpeg90",
                "bytes": img["jpeg90_message_bytes"], "edge_ms": img["jpeg90_encode_ms"],
                "link_ms": transfer_ms(img["jpeg90_message_bytes"], mbps) + delay_ms,
                "server_ms": (img["jpeg90_decode_ms"] + img["preprocess_ms"] + img["full_model_ms"]) / server_speedup,
                "accuracy": None, "float32_accuracy": None})
    out.append({"deployment": "whole model on the edge (results only leave the robot)", "split_index": None,
                "codec": "-", "bytes": 0.0, "edge_ms": img["preprocess_ms"] + img["full_model_ms"], "link_ms": 0.0,
                "server_ms": 0.0, "accuracy": None, "float32_accuracy": None})
    for c in out:
        c["total_ms"] = c["edge_ms"] + c["link_ms"] + c["server_ms"]
    return out


def rule_out(c: dict[str, Any], edge_ms: float | None, max_loss: float) -> str | None:
    """Why a candidate is not allowed, or None."""
    if edge_ms is not None and c["edge_ms"] > edge_ms:
        return f"edge {c['edge_ms']:.2f} ms > {edge_ms:g} ms"
    if c["accuracy"] is not None and c["float32_accuracy"] is not None \
            and 100 * (c["float32_accuracy"] - c["accuracy"]) > max_loss:
        return f"loses {100 * (c['float32_accuracy'] - c['accuracy']):.1f} accuracy points"
    return None


def plan(m: dict[str, Any], mbps: float, edge_ms: float | None = None, delay_ms: float = 0.0,
         server_speedup: float = 1.0, max_loss: float = 1.0) -> list[dict[str, Any]]:
    """Candidates sorted best first; allowed ones before ruled-out ones (with `why_not`)."""
    cands = candidates(m, mbps, delay_ms, server_speedup)
    for c in cands:
        c["why_not"] = rule_out(c, edge_ms, max_loss)
    return sorted(cands, key=lambda c: (c["why_not"] is not None, c["total_ms"]))


def _run(args: argparse.Namespace) -> int:
    if args.bundle:
        from mtl_split_core.bundle import load_manifest

        manifest = load_manifest(args.bundle, verify_files=False)
        backbone, size = manifest.backbone, manifest.input.width
    else:
        backbone, size = args.backbone, args.size
    if args.bandwidth <= 0:
        raise MtlSplitError(f"--bandwidth must be > 0 Mbit/s, got {args.bandwidth}")
    m = load_measurement(args.report, backbone, size)
    ranked = plan(m, args.bandwidth, args.edge_ms, args.delay_ms, args.server_speedup, args.max_loss)
    if args.json:
        print(json.dumps({"backbone": backbone, "input_size": size, "weights": m["weights"], "ranked": ranked},
                         indent=2))
        return 0
    print(f"{backbone} at {size} px ({m['weights']}), link {args.bandwidth:g} Mbit/s + {args.delay_ms:g} ms, "
          f"server speed-up {args.server_speedup:g}x")
    print(f"{'total ms':>9} {'edge':>7} {'link':>8} {'server':>7} {'bytes':>9}  deployment")
    for c in ranked[: args.top]:
        note = f"  [ruled out: {c['why_not']}]" if c["why_not"] else ""
        print(f"{c['total_ms']:9.2f} {c['edge_ms']:7.2f} {c['link_ms']:8.2f} {c['server_ms']:7.2f} "
              f"{c['bytes']:9.0f}  {c['deployment']}{note}")
    best = ranked[0]
    if best["why_not"]:
        print(f"no deployment meets the constraints; the fastest is ruled out ({best['why_not']})")
        return 1
    print(f"recommended: {best['deployment']}: {best['total_ms']:.1f} ms end to end")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="recommend the split point + wire format for a link (from bench split)",
                              description=__doc__)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--bundle", type=Path, help="plan for this bundle's backbone and input size")
    which.add_argument("--backbone", help="plan for this backbone (with --size)")
    p.add_argument("--size", type=int, default=224, help="input size with --backbone")
    p.add_argument("--bandwidth", type=float, required=True, metavar="MBPS", help="link rate in Mbit/s")
    p.add_argument("--edge-ms", type=float, default=None, help="most edge compute per frame (ms)")
    p.add_argument("--delay-ms", type=float, default=0.0, help="one-way link delay (ms)")
    p.add_argument("--server-speedup", type=float, default=1.0,
                   help="how much faster the server computes than this machine (e.g. 20 for a GPU)")
    p.add_argument("--max-loss", type=float, default=1.0, help="most accuracy points lost vs float32 (where measured)")
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="split.json of `mtl-split bench split`")
    p.add_argument("--top", type=int, default=8, help="candidates to list")
    p.add_argument("--json", action="store_true", help="print every candidate as JSON")
    p.set_defaults(func=_run)
