"""Point the ROS wheels' exported CMake files at this venv's Python and numpy headers.

The ros-* wheels are built in a manylinux image, and their *Export.cmake files keep that
image's include paths (/opt/python/cp311-cp311/include/python3.11 and its numpy include
dir). colcon builds of our messages fail on those paths, so we rewrite them. Idempotent:
a second run finds nothing to change.
"""
from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# Any include dir of the wheel build image: its Python headers or its numpy headers.
_BUILD_IMAGE_PYTHON = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?")
_BUILD_IMAGE_NUMPY = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/lib/python3\.\d+t?/site-packages/numpy/(?:_core|core)/include")


def fix(prefix: Path) -> int:
    python_inc = sysconfig.get_paths()["include"]
    numpy_inc = numpy.get_include()
    changed = 0
    for path in (prefix / "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        new = _BUILD_IMAGE_NUMPY.sub(numpy_inc, text)
        new = _BUILD_IMAGE_PYTHON.sub(python_inc, new)
        if new != text:
            path.write_text(new, errors="surrogateescape")
            changed += 1
    return changed


if __name__ == "__main__":
    n = fix(Path(sys.prefix))
    print(f"fix_ros_wheel_cmake: {n} file(s) rewritten under {sys.prefix}/share")
