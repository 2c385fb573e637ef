"""`mtl-split demo` (what `make demo` runs): train -> export -> bag -> live evaluation.

Each step is the `mtl-split` command a user would type, printed before it runs, so the demo
doubles as a walkthrough. Steps whose output already exists are reused (`--fresh` redoes
them), so a second `make demo` only re-measures.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import time
from pathlib import Path

from mtl_split_core.errors import MtlSplitError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train, export, make a bag and evaluate it live, end to end",
                       description=__doc__)
    p.add_argument("--config", default="training/configs/demo.yaml", help="training config of the demo model")
    p.add_argument("--name", default="demo", help="name of the run, bundle, bag and report directories")
    p.add_argument("--frames", type=int, default=300, help="frames in the evaluation bag")
    p.add_argument("--fresh", action="store_true", help="redo every step, even if its output exists")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value for training, as `mtl-split train --set` (repeatable), "
                        "e.g. --set train.epochs=16")
    p.set_defaults(func=run)


def _step(title: str, argv: list[str], done: Path | None, fresh: bool) -> None:
    """Run one `mtl-split` command unless `done` exists (with --fresh, remove it first)."""
    from .cli import main

    print(f"\n=== {title}\n$ mtl-split {shlex.join(argv)}", flush=True)
    if done is not None and done.exists():
        if not fresh:
            print(f"(reusing {done}; --fresh to redo)")
            return
        shutil.rmtree(done)
    start = time.perf_counter()
    if main(argv) != 0:
        raise MtlSplitError(f"step failed: mtl-split {shlex.join(argv)}")
    print(f"({time.perf_counter() - start:.0f} s)")


def _run_config(run_dir: Path) -> dict | None:
    """The config a previous run in run_dir was trained with (None: no run there)."""
    from mtl_split_training.run import RUN_META

    meta = run_dir / RUN_META
    return json.loads(meta.read_text()).get("raw_config") if meta.is_file() else None


def _model_settings(raw_config: dict) -> dict:
    """What decides the trained model: everything but the run's name, which only labels it."""
    return {k: v for k, v in raw_config.items() if k != "name"}


def run(args: argparse.Namespace) -> int:
    from mtl_split_core.bundle import load_manifest
    from mtl_split_training.config import load_config
    from mtl_split_training.run import FINAL

    name = args.name
    run_dir, bundle, bag, out = Path("runs", name), Path("models", name), Path("data/bags", name), Path("reports", name)
    started = time.perf_counter()
    train = ["train", "--config", args.config, "--out", str(run_dir), *(f"--set={o}" for o in args.overrides)]
    previous = _run_config(run_dir)
    wanted = load_config(args.config, args.overrides)[1]
    if args.fresh or (previous is not None and _model_settings(previous) != _model_settings(wanted)):
        train.append("--overwrite")  # asked for, or the config changed since that run
    elif (run_dir / FINAL).exists():
        train = []
    elif run_dir.exists():
        train.append("--resume")  # an interrupted demo continues where it stopped
    title = "1/4 train a multi-task model (shared backbone + one head per task)"
    if train:
        _step(title, train, None, args.fresh)
    else:
        print(f"\n=== {title}\n(reusing the finished run in {run_dir}; --fresh to retrain)")
    redo = args.fresh or bool(train)  # a new model invalidates the bundle and the bag made for it
    _step("2/4 export the bundle: backbone.onnx (robot) + heads.onnx (server) + manifest.json",
          ["export", str(run_dir), "--out", str(bundle)], bundle, redo)
    manifest = load_manifest(bundle)
    size = manifest.input.width
    _step("3/4 record a camera bag with ground truth (test split, never seen in training)",
          ["make-bag", "--data", manifest.extra.get("data", {}).get("spec", "shapes"), "--frames", str(args.frames),
           "--size", str(size), "--tasks", ",".join(manifest.task_names), "--rate", "30", "--out", str(bag)],
          bag, redo)
    _step("4/4 replay the bag through real edge + server nodes over ROS 2 and measure",
          ["evaluate", "--bundle", str(bundle), "--bag", str(bag), "--out", str(out)], None, args.fresh)
    if any(t.dense for t in manifest.tasks):
        from .bag_reading import read_frames
        from .dense_figure import dense_figure

        dense_figure(bundle, read_frames(bag).frames, out / "dense_results.png")
    print_summary(json.loads((out / "report.json").read_text()), out, time.perf_counter() - started)
    return 0


def print_summary(r: dict, out: Path, seconds: float) -> None:
    b, lat = r["bytes_per_frame"], r["latency_ms"]
    from .report import dense_summary, predictions_summary

    def quality(t: str, m: dict) -> tuple[str, str]:
        if "accuracy" in m:
            return f"accuracy {t}", f"{m['accuracy']:.3f}  (macro-F1 {m['macro_f1']:.3f})"
        if m["kind"] != "classification" and m.get("labelled_frames"):
            return f"{m['kind']} {t}", dense_summary(m)
        return f"predicted {t}", predictions_summary(m)

    rows = [quality(t, m) for t, m in r["tasks"].items()]
    feat = b.get("features_message") or b.get("features_payload")
    rows += [
        ("bytes/frame sent (features message)", f"{feat} B"),
        ("bytes/frame JPEG-90 message, same frames", f"{b['jpeg90_message']} B  ({b['jpeg90_message'] / feat:.1f}x features)"),
        *([("bytes/frame H.264 CRF 23 stream message", f"{b['h264_crf23_message']} B  "
            f"({b['h264_crf23_message'] / feat:.1f}x features)")] if "h264_crf23_message" in b else []),
        ("bytes/frame raw image", f"{b['raw_image']} B  ({b['raw_image'] / feat:.1f}x features)"),
        ("latency end to end p50 / p99", f"{lat['end_to_end']['p50']} / {lat['end_to_end']['p99']} ms"),
        ("  edge compute / transport / server p50",
         f"{lat['edge_compute']['p50']} / {lat['transport']['p50']} / {lat['server_compute']['p50']} ms"),
        ("throughput", f"{r['fps']} frames/s at the bag's 30 Hz"),
        ("frames sent / received / dropped", "{sent} / {received} / {dropped}".format(**r["frames"])),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n=== MTL-Split demo: {r['model_id']} ({seconds / 60:.1f} min)")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(f"\nreport: {out / 'report.json'}\nplots:  {', '.join(str(p) for p in sorted(out.glob('*.png')))}"
          f"\nsummary: {out / 'summary.md'}")
