"""Child processes, started, watched and stopped one way: the nodes of a launch plan (what
`mtl-split launch`, evaluate, the benchmarks and the tests start, so each of them starts the
nodes exactly as a user would) and helpers such as the link relay.

Stopping is what Ctrl-C does first (SIGINT: a clean rclpy shutdown), then SIGTERM, then
SIGKILL, each after `timeout` seconds without an exit.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from mtl_split_ros.launch_plan import PlannedNode

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


class ChildProcess:
    """One process. Its output goes to log_path, or with none to our stdout, each line
    prefixed with `[label] `."""

    def __init__(self, label: str, command: list[str], log_path: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.label, self.command, self.log_path = label, command, log_path
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log: IO | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_path, "wb")
            self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        else:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                         text=True, bufsize=1)
            threading.Thread(target=_relay, args=(self.proc.stdout, f"[{label}] "), daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would end it."""
        self.proc.kill()
        self.proc.wait()

    def log(self, tail: int = 40) -> str:
        """The last `tail` lines of its log file."""
        if self.log_path is None:
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-tail:])

    def stop(self, timeout: float = 10.0) -> int:
        return stop_all([self], timeout)[self.label]


def stop_all(procs: Iterable[ChildProcess], timeout: float = 10.0) -> dict[str, int]:
    """Stop them together (each signal to every one still running, then wait); exit codes."""
    procs = list(procs)
    for sig in STOP_SIGNALS:
        alive = [p for p in procs if p.alive]
        for p in alive:
            p.proc.send_signal(sig)
        end = time.monotonic() + timeout
        while any(p.alive for p in alive) and time.monotonic() < end:
            time.sleep(0.02)
    for p in procs:
        if p._log is not None:
            p._log.close()
    return {p.label: p.proc.wait() for p in procs}


class NodeProcesses:
    """The processes of one run, as a context manager: the planned nodes start on enter (or
    start()), more can be added while it runs, and every one is stopped on exit.

    Logs go to `<log_dir>/<label>.log`, or to our stdout when log_dir is None.
    """

    def __init__(self, nodes: Iterable[PlannedNode] = (), log_dir: Path | None = None,
                 python: str = sys.executable) -> None:
        self.nodes = list(nodes)
        self.log_dir = log_dir
        self.python = python
        self.procs: dict[str, ChildProcess] = {}
        self._reported: set[str] = set()

    def start(self) -> "NodeProcesses":
        for node in self.nodes:
            self._start(node)
        return self

    def add(self, node: PlannedNode) -> ChildProcess:
        """Start one more node (a restart, or a node a test adds)."""
        self.nodes.append(node)
        return self._start(node)

    def run(self, label: str, command: list[str], env: dict[str, str] | None = None) -> ChildProcess:
        """Start a helper process that is not a node of the plan (e.g. the link relay), with
        `env` added to ours."""
        label = self._unique(label)
        log = self.log_dir / f"{label.replace(':', '_')}.log" if self.log_dir is not None else None
        self.procs[label] = ChildProcess(label, command, log, env)
        return self.procs[label]

    def _start(self, node: PlannedNode) -> ChildProcess:
        label = f"{node.key}{node.namespace.replace('/', ':')}" if node.namespace else node.key
        return self.run(label, node.command(self.python), dict(node.environment))

    def _unique(self, label: str) -> str:
        n, unique = 1, label
        while unique in self.procs:
            n += 1
            unique = f"{label}~{n}"
        return unique

    def dead(self) -> dict[str, int]:
        """Processes that have exited, with their exit codes."""
        return {k: p.returncode for k, p in self.procs.items() if not p.alive}

    def exited(self) -> dict[str, int]:
        """Processes that exited since the last call (each reported once), with their exit
        codes: a node that crashed, or that a lifecycle `shutdown` transition finalized."""
        new = {k: c for k, c in self.dead().items() if k not in self._reported}
        self._reported.update(new)
        return new

    def check_alive(self) -> None:
        """Raise, naming the logs, if a process has exited."""
        if self.dead():
            raise RuntimeError(f"node process(es) exited: {self.dead()}; see the logs in {self.log_dir}")

    def logs(self, tail: int = 40) -> str:
        """The end of every log, for a failure message."""
        return "\n".join(f"--- {p.label} ({'running' if p.alive else f'exit {p.returncode}'})\n{p.log(tail)}"
                         for p in self.procs.values())

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        """Stop every process; their exit codes."""
        return stop_all(self.procs.values(), timeout)

    def __enter__(self) -> "NodeProcesses":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _relay(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()
