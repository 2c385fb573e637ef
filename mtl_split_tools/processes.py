"""Planned nodes as child processes: start, watch, stop cleanly (the no-launch_ros runner).

Used by `mtl-split launch`, evaluation, benchmarks and tests, so every one of them starts the
nodes exactly as a user would.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from mtl_split_ros.launch_plan import PlannedNode


class NodeProcesses:
    """Context manager over the processes of a launch plan.

    Output goes to `<log_dir>/<key>.log` when log_dir is given, else to our stdout with a
    `[key]` prefix per line.
    """

    def __init__(self, nodes: list[PlannedNode], log_dir: Path | None = None, python: str = sys.executable):
        self.nodes = nodes
        self.log_dir = log_dir
        self.python = python
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[IO] = []

    def start(self) -> "NodeProcesses":
        for node in self.nodes:
            label = f"{node.key}{node.namespace.replace('/', ':')}" if node.namespace else node.key
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log = open(self.log_dir / f"{label.replace(':', '_')}.log", "w")
                self._logs.append(log)
                proc = subprocess.Popen(node.command(self.python), stdout=log, stderr=subprocess.STDOUT)
            else:
                proc = subprocess.Popen(node.command(self.python), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1)
                threading.Thread(target=_relay, args=(proc.stdout, f"[{label}] "), daemon=True).start()
            self.procs[label] = proc
        return self

    def dead(self) -> dict[str, int]:
        """Nodes that have exited, with their exit codes."""
        return {k: p.returncode for k, p in self.procs.items() if p.poll() is not None}

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        """SIGINT (what Ctrl-C sends), then SIGTERM, then SIGKILL; returns exit codes."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in self.procs.values() if p.poll() is None]
            for p in alive:
                p.send_signal(sig)
            end = time.monotonic() + timeout
            while any(p.poll() is None for p in alive) and time.monotonic() < end:
                time.sleep(0.05)
        for log in self._logs:
            log.close()
        return {k: p.returncode for k, p in self.procs.items()}

    def __enter__(self) -> "NodeProcesses":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _relay(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()
