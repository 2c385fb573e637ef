"""Where benchmark results go and how they look: the JSON (with the machine and its load),
tables on stdout, small PNGs beside the JSON, progress bars."""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPORT_DIR = Path("reports/bench")
PNG_MAX_BYTES = 200_000


def add_common_arguments(p: argparse.ArgumentParser, name: str) -> None:
    """--out, --work, --full: every benchmark takes them."""
    p.add_argument("--out", type=Path, default=REPORT_DIR / f"{name}.json", help="result JSON (PNG beside it)")
    p.add_argument("--work", type=Path, default=REPORT_DIR / "work",
                   help="cache of the bundles/models the benchmark builds (reused across runs)")
    p.add_argument("--full", action="store_true", help="the real-machine setting (larger, longer); default: small")


def write_result(out: Path, result: dict[str, Any]) -> Path:
    """result + machine description + load average + the run's DDS domain -> out (JSON)."""
    from mtl_split_tools.report import machine

    out.parent.mkdir(parents=True, exist_ok=True)
    # The load average says how shared the cores were while we measured (timings depend on it).
    load = [round(v, 2) for v in os.getloadavg()]
    extra = {"machine": machine(), "load_average_at_end": load, "ros_domain_id": os.environ.get("ROS_DOMAIN_ID")}
    out.write_text(json.dumps({**result, **extra}, indent=2) + "\n")
    print(f"wrote {out}")
    return out


def png_path(out: Path, suffix: str = "") -> Path:
    return out.with_name(f"{out.stem}{suffix}.png")


def save_figure(fig: Any, path: Path) -> Path:
    """Small PNGs (they go into docs/img): modest dpi, and say so if one is still large."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    if path.stat().st_size > PNG_MAX_BYTES:
        print(f"note: {path} is {path.stat().st_size // 1000} KB")
    print(f"wrote {path}")
    return path


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """columns: (key, header); values printed with str(), floats with 4 significant digits."""
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    table = [[h for _, h in columns]] + [[cell(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


def progress(iterable: Any = None, **kw: Any) -> Any:
    from tqdm import tqdm

    return tqdm(iterable, **kw)
