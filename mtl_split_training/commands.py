"""`mtl-split train | export | compare | build-engine | list`: argument parsing only; torch is
imported in func."""
from __future__ import annotations

import argparse
import importlib

from mtl_split_core.options import PRECISIONS

from .errors import TrainingError
from .train_main import add_train_arguments, run_train


def _export(args: argparse.Namespace) -> int:
    from .export import export_run

    for manifest in export_run(args.run, args.out):
        tasks = ", ".join(manifest.task_names)
        print(f"{manifest.model_id}: {manifest.backbone} split at {manifest.split_point}, tasks {tasks}, "
              f"features {'x'.join(map(str, manifest.features.shape))} {manifest.features.dtype}")
    print(f"bundle(s) written to {args.out}")
    return 0


def _save_backbone(args: argparse.Namespace) -> int:
    from pathlib import Path

    from safetensors.torch import save_file

    from .backbones import timm_checkpoint
    from .models import load_model

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise TrainingError(f"--out {out}: write a .safetensors file (never a pickle)")
    model, _, _ = load_model(Path(args.run))
    state = timm_checkpoint(model.spec.backbone, model.stages)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out))
    print(f"{model.spec.backbone} backbone of {args.run} ({len(state)} tensors) written to {out}; start a run from it "
          f"with --set model.backbone={model.spec.backbone} --set model.pretrained_file={out}")
    return 0


def _build_engine(args: argparse.Namespace) -> int:
    from .engine import build_engines

    for path in build_engines(args.bundle, precision=args.precision, calib_images=args.calib_images,
                              batch=args.batch, data=args.data):
        print(f"engine: {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .compare import RESULTS_MD, run_compare

    run_compare(args.config, args.out, args.runs, args.overrides, args.reuse, args.command_line, args.equal_compute,
                seeds=args.seeds)
    print((Path(args.out) / RESULTS_MD).read_text())
    return 0


# What `mtl-split list` prints: name -> (module, its Registry).
REGISTRIES = {
    "backbones": ("mtl_split_training.backbones", "BACKBONES"),
    "heads": ("mtl_split_training.heads", "HEADS"),
    "weightings": ("mtl_split_training.weighting", "WEIGHTINGS"),
    "datasets": ("mtl_split_training.datasets", "DATASETS"),
}


def _list(args: argparse.Namespace) -> int:
    unknown = [w for w in args.what if w not in REGISTRIES]
    if unknown:
        raise TrainingError(f"nothing registered as {', '.join(unknown)}; use {', '.join(REGISTRIES)}")
    for what in args.what or REGISTRIES:
        module, attr = REGISTRIES[what]
        try:
            registry = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            print(f"{what}: listing them needs {e.name!r}, which this install lacks (`make setup` installs it)\n")
            continue
        print(f"{what} (chosen by {registry.chosen_by}):")
        width = max(map(len, registry))
        for entry in registry.entries():
            print(f"  {entry.name:<{width}}  {entry.summary}")
        print()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train an MTL or STL run from a YAML config",
                                  description="Train an MTL or STL run (see docs/training.md).")
    add_train_arguments(train)
    train.set_defaults(func=run_train)

    save = subparsers.add_parser("save-backbone", help="a run's trained backbone as a timm checkpoint "
                                                      "(model.pretrained_file of another run)")
    save.add_argument("run", help="run directory (MTL) or model directory (an STL member) of `mtl-split train`")
    save.add_argument("--out", required=True, help="the .safetensors file to write")
    save.set_defaults(func=_save_backbone)

    export = subparsers.add_parser("export", help="export a run to model bundle(s) (ONNX + manifest)")
    export.add_argument("run", help="run directory made by `mtl-split train`")
    export.add_argument("--out", required=True, help="bundle directory (STL: one subdirectory per task)")
    export.set_defaults(func=_export)

    compare = subparsers.add_parser("compare", help="train one config as MTL and as STL, write the comparison table")
    compare.add_argument("--config", default="training/configs/mtl_vs_stl.yaml", help="YAML config of the comparison")
    compare.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    compare.add_argument("--runs", default="runs/mtl_vs_stl", help="where the two runs go")
    compare.add_argument("--out", default="reports/mtl_vs_stl", help="results.json + results.md")
    compare.add_argument("--seeds", type=int, default=1,
                         help="train every model with this many seeds (the config's and the next ones): "
                              "mean ± std and Delta_m over them")
    compare.add_argument("--reuse", action="store_true", help="reuse finished runs instead of retraining")
    compare.add_argument("--equal-compute", action="store_true",
                         help="also train MTL for epochs x tasks (as many images as all STL models together)")
    compare.set_defaults(func=_compare)

    engine = subparsers.add_parser("build-engine", help="build TensorRT engines for a bundle (needs tensorrt + GPU)")
    engine.add_argument("bundle", help="bundle directory made by `mtl-split export`")
    engine.add_argument("--precision", choices=PRECISIONS, default="fp16", help="engine precision")
    engine.add_argument("--calib-images", type=int, default=256, help="int8 calibration images (training split)")
    engine.add_argument("--batch", type=int, default=1, help="batch size the engines are built for")
    engine.add_argument("--data", default=None,
                        help="dataset spec for int8 calibration (default: the one the bundle was trained on)")
    engine.set_defaults(func=_build_engine)

    listing = subparsers.add_parser("list", help="list the registered backbones, heads, weightings and datasets",
                                    description="Every name a training config or --data can use, with what it is.")
    listing.add_argument("what", nargs="*", metavar="WHAT",
                         help=f"only these registries: {', '.join(REGISTRIES)} (default: all)")
    listing.set_defaults(func=_list)
