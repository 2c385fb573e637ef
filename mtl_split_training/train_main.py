"""`python -m mtl_split_training.train_main` = `mtl-split train`, for launchers like torchrun:

    torchrun --nproc_per_node 2 -m mtl_split_training.train_main --config C --out runs/x
"""
from __future__ import annotations

import argparse
import sys

from mtl_split_core.errors import MtlSplitError
from mtl_split_core.notices import show_on_stderr


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (training/configs/*.yaml); optional with --resume")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--out", required=True, help="run directory, e.g. runs/demo")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")


def run_train(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .config import apply_overrides, config_from_dict, load_config
    from .distributed import init_distributed, shutdown_distributed
    from .errors import TrainingError
    from .run import train_run
    from .trainer import score_line

    if args.config:
        cfg, raw = load_config(args.config, args.overrides)
    elif args.resume and (Path(args.out) / "run.json").is_file():
        raw = apply_overrides(json.loads((Path(args.out) / "run.json").read_text())["raw_config"], args.overrides)
        cfg = config_from_dict(raw)
    else:
        raise TrainingError("--config is required (only --resume can reuse the run's own config)")
    ctx = init_distributed()
    try:
        metrics = train_run(cfg, raw, args.out, resume=args.resume, overwrite=args.overwrite, ctx=ctx)
    finally:
        shutdown_distributed(ctx)
    if ctx.is_main:
        for member, entry in metrics["members"].items():
            print(f"{member}: test {score_line(entry.get('test', {}))}; {entry.get('train_seconds', 0):.0f}s training, "
                  f"{entry.get('edge_params', 0):,} edge parameters")
        print(f"run written to {args.out} (export: mtl-split export {args.out} --out models/<name>)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mtl_split_training.train_main", description="Train an MTL or STL run.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    show_on_stderr()
    try:
        return run_train(args)
    except MtlSplitError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
