"""Static checks that catch real bugs (undefined names, unused imports, syntax errors)
before any test runs them: ruff's pyflakes and error rules over all our Python."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["mtl_split_core", "mtl_split_ros", "mtl_split_edge", "mtl_split_server", "mtl_split_viz", "mtl_split_training",
         "mtl_split_tools", "mtl_split_bench", "launch", "test", "scripts"]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (requirements/dev.txt)")
    r = subprocess.run([ruff, "check", "--select", "F,E9", "--output-format", "concise", "--no-cache", *PATHS],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
