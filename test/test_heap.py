"""The allocator setting of the nodes that take camera frames: a 36 MB buffer allocated and
freed per frame faults its pages in once, not at every frame. Each case runs in its own
Python process (mallopt changes the whole process)."""
from __future__ import annotations

import subprocess
import sys

import pytest

FRAME_BYTES = 36_000_000  # 4000x3000 rgb8
PAGES = FRAME_BYTES // 4096

FAULTS_PER_FRAME = """
import resource, sys
from mtl_split_core.heap import keep_large_buffers
tuned = keep_large_buffers() if sys.argv[1] == "tuned" else None
def frame():
    data = b"x" * {size}  # every page written, as a take's copy writes it
    return len(data)
frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    frame()
print(tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
""".format(size=FRAME_BYTES)


def faults_per_frame(mode: str) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_FRAME, mode], capture_output=True, text=True, check=True)
    tuned, faults = out.stdout.split()
    return tuned, float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator (Linux)")
def test_large_frame_buffers_are_reused_instead_of_faulted_in_per_frame():
    tuned, faults = faults_per_frame("tuned")
    if tuned != "True":
        pytest.skip("no glibc mallopt in this process's C library")
    _, default_faults = faults_per_frame("default")
    assert faults < PAGES / 20, f"{faults:.0f} page faults per frame with the setting ({default_faults:.0f} without)"
    assert faults <= default_faults
