"""Shared fixtures and helpers.

ROS isolation: every test session gets its own random ROS_DOMAIN_ID and keeps discovery on
this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST), so parallel test runs never hear
each other. Set at import time, before any rclpy.init, and inherited by every node process.

Helpers: `tiny_bundle` (a real untrained bundle, once per session), `ros` (an rclpy node in
the test process with spin/wait helpers), `launcher` (node processes started the way the
runner starts them, `python -m <module> --ros-args ...`, stopped at teardown, their logs
quoted when a wait times out).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 200))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_STATIC_PEERS", None)
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32x32 mobilenetv3_small_100 bundle with tasks shape (4 classes) and scale (8)."""
    testing = pytest.importorskip("mtl_split_training.testing", reason="building a bundle needs torch/timm")
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    testing.make_tiny_bundle(out, size=32)
    return out


# --- node processes ---------------------------------------------------------------------------

def ros_args(params: dict[str, Any] | None = None, namespace: str | None = None,
             remaps: dict[str, str] | None = None, name: str | None = None) -> list[str]:
    """Command-line ROS arguments for a node: -p name:=value (YAML values), -r from:=to."""
    args = ["--ros-args"]
    for key, value in (params or {}).items():
        args += ["-p", f"{key}:={json.dumps(value) if not isinstance(value, str) else value}"]
    if namespace:
        args += ["-r", f"__ns:={namespace}"]
    if name:
        args += ["-r", f"__node:={name}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    return args


class NodeProcess:
    """One node as a child process; stdout+stderr go to a log file."""

    def __init__(self, module: str, args: list[str], log_path: Path) -> None:
        self.module, self.log_path = module, log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=self._log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def log(self, tail: int = 40) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-tail:])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (a clean rclpy shutdown), SIGKILL if it does not exit in time."""
        if self.alive:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class Launcher:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[NodeProcess] = []

    def start(self, module: str, params: dict[str, Any] | None = None, namespace: str | None = None,
              remaps: dict[str, str] | None = None, name: str | None = None) -> NodeProcess:
        tag = f"{len(self.processes):02d}_{module}_{(namespace or 'root').strip('/').replace('/', '_')}"
        proc = NodeProcess(module, ros_args(params, namespace, remaps, name), self.log_dir / f"{tag}.log")
        self.processes.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name} ({'running' if p.alive else f'exit {p.proc.returncode}'})\n{p.log()}"
                         for p in self.processes)

    def stop_all(self) -> None:
        for p in self.processes:
            p.stop()


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path_factory.mktemp("node_logs"))
    yield launcher
    launcher.stop_all()


# --- an rclpy node in the test process ------------------------------------------------------

class RosHarness:
    """A node with its own context and executor; waits spin it and fail with a clear message."""

    def __init__(self, name: str, launcher: Launcher | None = None) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.launcher = launcher

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(end - time.monotonic(), 0)))

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str,
                 tick: Callable[[], None] | None = None, tick_every: float = 0.25) -> Any:
        """Spin until predicate() is truthy; call tick() every tick_every seconds meanwhile
        (e.g. re-publish until a node has discovered us). Returns the predicate's value."""
        end = time.monotonic() + timeout
        next_tick = 0.0
        while time.monotonic() < end:
            if tick is not None and time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + tick_every
            self.executor.spin_once(timeout_sec=0.02)
            value = predicate()
            if value:
                return value
        logs = f"\nnode logs:\n{self.launcher.logs()}" if self.launcher else ""
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{logs}")

    def collect(self, msg_type: type, topic: str, qos: Any = 50) -> list[Any]:
        """Subscribe and return the list the messages are appended to."""
        received: list[Any] = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            self.wait_for(client.service_is_ready, timeout, f"service {name}")
            future = client.call_async(request)
            self.wait_for(future.done, timeout, f"a response from {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def ros(launcher: Launcher, request: pytest.FixtureRequest) -> Iterator[RosHarness]:
    pytest.importorskip("rclpy", reason="needs the ROS 2 wheels (make setup)")
    harness = RosHarness(f"test_{request.module.__name__.rsplit('.', 1)[-1]}", launcher)
    yield harness
    harness.close()
