"""`mtl-split bench memory`: what the robot must hold, MTL-Split vs single-task deployment.

For each backbone and task count we build (random init: memory does not depend on the
weights' values) one MTL bundle and one single-task (STL) bundle per task, and compare what
the edge loads:

    mtl_split   one shared backbone.onnx (the paper's deployment)
    mtl_full    the MTL model's backbone + heads, all on the edge (no server)
    stl_split   one backbone.onnx per task (N split single-task models)
    stl_full    backbone + heads of every single-task model (N full models on the edge)

Per deployment: parameter bytes (ONNX initializers), model file bytes, and the peak resident
memory of a fresh process that loads those files in ONNX Runtime and runs each once, minus
the peak of a baseline process that only imports onnxruntime. The peak is the child's VmHWM:
Linux folds the forking parent's RSS into a child's ru_maxrss at exec (measured here: every
child "peaked" at the benchmark's own 760 MB with torch loaded), VmHWM belongs to the child's
own address space. ru_maxrss is recorded too, for the record.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from .bundles import random_bundle, task_classes
from .output import add_common_arguments, png_path, print_table, progress, pyplot, save_figure, write_result

BACKBONES = ("mobilenetv3_small_100", "efficientnet_b0", "vgg16")
FULL_BACKBONES = (*BACKBONES, "mobilenetv3_large_100", "resnet18")
DEPLOYMENTS = ("mtl_split", "mtl_full", "stl_split", "stl_full")


def child(paths: list[str]) -> None:
    """Child process: load and run every ONNX file given (none = baseline), print peak RSS."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    sessions = [ort.InferenceSession(p, options, providers=["CPUExecutionProvider"]) for p in paths]
    for s in sessions:
        inp = s.get_inputs()[0]
        x = np.zeros([1 if not isinstance(d, int) else d for d in inp.shape], np.float32)
        for _ in range(2):
            s.run(None, {inp.name: x})
    status = Path("/proc/self/status").read_text()
    hwm_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    print(json.dumps({"hwm_kb": hwm_kb, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def peak_rss_kb(paths: list[Path]) -> int:
    """The child's own peak RSS (VmHWM) in KiB."""
    out = subprocess.run([sys.executable, "-m", "mtl_split_bench.memory", "--child", *map(str, paths)],
                         check=True, capture_output=True, text=True).stdout
    return int(json.loads(out.strip().splitlines()[-1])["hwm_kb"])


def onnx_param_bytes(path: Path) -> int:
    import numpy as np
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(path), load_external_data=False)
    return sum(int(np.prod(t.dims)) * tensor_dtype_to_np_dtype(t.data_type).itemsize for t in model.graph.initializer)


def deployments(mtl: Path, stl: list[Path]) -> dict[str, list[Path]]:
    """ONNX files the edge loads in each deployment."""
    return {
        "mtl_split": [mtl / "backbone.onnx"],
        "mtl_full": [mtl / "backbone.onnx", mtl / "heads.onnx"],
        "stl_split": [b / "backbone.onnx" for b in stl],
        "stl_full": [f for b in stl for f in (b / "backbone.onnx", b / "heads.onnx")],
    }


def measure(files: list[Path], baseline_kb: int, repeats: int) -> dict[str, Any]:
    peak = min(peak_rss_kb(files) for _ in range(repeats))
    return {"param_bytes": sum(onnx_param_bytes(f) for f in files),
            "file_bytes": sum(f.stat().st_size for f in files),
            "peak_rss_mb": round((peak - baseline_kb) / 1024, 1), "onnx_files": len(files)}


def run(backbones: tuple[str, ...], task_counts: tuple[int, ...], size: int, work: Path, repeats: int) -> dict:
    all_tasks = task_classes(max(task_counts))
    names = list(all_tasks)
    baseline_kb = min(peak_rss_kb([]) for _ in range(repeats))
    rows = []
    jobs = [(b, n) for b in backbones for n in task_counts]
    for backbone, n in progress(jobs, desc="bench memory", unit="config"):
        tasks = {t: all_tasks[t] for t in names[:n]}
        mtl = random_bundle(work, backbone, tasks, size)
        # Each single-task model is its own network (own seed), as separately trained ones are.
        stl = [random_bundle(work, backbone, {t: all_tasks[t]}, size, seed=1 + names.index(t)) for t in tasks]
        for name, files in deployments(mtl, stl).items():
            rows.append({"backbone": backbone, "tasks": n, "deployment": name, **measure(files, baseline_kb, repeats)})
    _add_savings(rows)
    return {"benchmark": "memory", "input_size": size, "weights": "random init (memory does not depend on values)",
            "baseline_rss_mb": round(baseline_kb / 1024, 1), "repeats": repeats,
            "runtime": "ONNX Runtime CPU, 1 intra-op thread, batch 1", "rows": rows}


def _add_savings(rows: list[dict]) -> None:
    """MTL-Split's saving against each single-task deployment of the same backbone/tasks."""
    by = {(r["backbone"], r["tasks"], r["deployment"]): r for r in rows}
    for r in rows:
        if r["deployment"] != "mtl_split":
            continue
        for ref in ("stl_split", "stl_full"):
            other = by[(r["backbone"], r["tasks"], ref)]
            for key in ("param_bytes", "peak_rss_mb"):
                r[f"saved_vs_{ref}_{key}"] = round(1 - r[key] / other[key], 4) if other[key] > 0 else None


def plot(result: dict, path: Path) -> Path:
    plt = pyplot()
    rows = result["rows"]
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    counts = sorted({r["tasks"] for r in rows})
    fig, axes = plt.subplots(1, len(backbones), figsize=(3.3 * len(backbones), 3.2), squeeze=False)
    width = 0.8 / len(DEPLOYMENTS)
    for ax, backbone in zip(axes[0], backbones):
        for i, dep in enumerate(DEPLOYMENTS):
            vals = [next(r["peak_rss_mb"] for r in rows if (r["backbone"], r["tasks"], r["deployment"]) ==
                         (backbone, n, dep)) for n in counts]
            ax.bar([c + (i - 1.5) * width for c in range(len(counts))], vals, width, label=dep)
        ax.set_xticks(range(len(counts)), [f"{n} tasks" for n in counts])
        ax.set_title(backbone, fontsize=9)
        ax.set_ylabel("edge peak RSS (MB)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"edge memory at {result['input_size']}x{result['input_size']} (ONNX Runtime, minus baseline)",
                 fontsize=9)
    return save_figure(fig, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, "memory")
    p.add_argument("--backbones", default=None, help=f"comma-separated (default {','.join(BACKBONES)})")
    p.add_argument("--tasks", default="2,3", help="task counts, comma-separated")
    p.add_argument("--size", type=int, default=224, help="input size (the paper's 224)")


def main(args: argparse.Namespace) -> int:
    backbones = tuple(args.backbones.split(",")) if args.backbones else (FULL_BACKBONES if args.full else BACKBONES)
    counts = tuple(int(n) for n in args.tasks.split(","))
    result = run(backbones, counts, args.size, args.work, repeats=3 if args.full else 1)
    print_table(result["rows"], [("backbone", "backbone"), ("tasks", "N"), ("deployment", "deployment"),
                                 ("param_bytes", "param B"), ("file_bytes", "file B"), ("peak_rss_mb", "RSS MB"),
                                 ("saved_vs_stl_split_peak_rss_mb", "saved vs STL split"),
                                 ("saved_vs_stl_full_peak_rss_mb", "saved vs STL full")])
    write_result(args.out, result)
    plot(result, png_path(args.out))
    return 0


if __name__ == "__main__":  # the measured child process; users run `mtl-split bench memory`
    child(sys.argv[2:])
