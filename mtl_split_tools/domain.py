"""A private DDS domain on loopback for the pipelines we start ourselves.

evaluate, demo, every benchmark and the test suite start their own edge and server nodes.
Each run claims a ROS_DOMAIN_ID that no other run of ours on this host holds (a lock file per
id, released when the run ends or dies) and keeps discovery on this machine, so two runs at
once never hear each other's frames. `mtl-split evaluate --attach` does not claim one: it
talks to the user's running pipeline in the user's own environment.
"""
from __future__ import annotations

import fcntl
import os
import random
import tempfile
from pathlib import Path
from typing import IO

from mtl_split_core.errors import MtlSplitError

# Pins the domain id, e.g. to watch a benchmark with `ros2 topic echo` from another shell.
PIN_VARIABLE = "MTL_SPLIT_DOMAIN_ID"
# Ids whose DDS ports stay below Linux's ephemeral port range (ROS 2's domain id guidance).
DOMAIN_IDS = range(1, 102)
LOCK_DIR = Path(tempfile.gettempdir()) / "mtl_split_dds_domains"


class PrivateDomain:
    """A claimed domain id. `apply()` puts it into os.environ, read by rclpy in this process
    and inherited by every node process started afterwards; as a context manager it also
    gives the environment and the id back on exit."""

    def __init__(self) -> None:
        self.domain_id, self._lock = _claim()
        self._saved: dict[str, str | None] = {}

    def variables(self) -> dict[str, str | None]:
        """The environment of a private run (None: unset). This process publishes the camera
        frames of the run, so it loads the camera DDS profile; the nodes it starts get theirs
        from their launch plan."""
        from mtl_split_ros.launch_plan import dds_environment

        return {"ROS_DOMAIN_ID": str(self.domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "ROS_STATIC_PEERS": None, **dds_environment("camera")}

    def apply(self) -> "PrivateDomain":
        for name, value in self.variables().items():
            self._saved.setdefault(name, os.environ.get(name))
            _set_env(name, value)
        return self

    def release(self) -> None:
        for name, value in self._saved.items():
            _set_env(name, value)
        self._saved = {}
        if self._lock is not None:
            self._lock.close()  # closing the file drops its lock
            self._lock = None

    def __enter__(self) -> "PrivateDomain":
        return self.apply()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _claim() -> tuple[int, IO | None]:
    """A domain id and the open lock file that holds it (None when pinned by the user)."""
    pinned = os.environ.get(PIN_VARIABLE)
    if pinned:
        try:
            return int(pinned), None
        except ValueError:
            raise MtlSplitError(f"{PIN_VARIABLE}={pinned!r}: use a DDS domain id such as 42") from None
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    ids = list(DOMAIN_IDS)
    random.SystemRandom().shuffle(ids)
    for domain_id in ids:
        try:
            lock = open(LOCK_DIR / f"{domain_id}.lock", "a")
        except PermissionError:  # another user's lock file
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return domain_id, lock
    raise MtlSplitError(f"every private DDS domain id ({DOMAIN_IDS.start}-{DOMAIN_IDS.stop - 1}) is held by "
                        f"another mtl_split run on this host (locks in {LOCK_DIR}); wait for one to end, or set "
                        f"{PIN_VARIABLE}")
