"""Shared fixtures; helpers that several test modules use are in helpers.py.

ROS isolation: the session claims a private DDS domain (mtl_split_tools.domain: an id no
other mtl_split run on this host holds, discovery kept on this machine) at import time,
before any rclpy.init; every node process inherits it.

Fixtures: `tiny_bundle` (a real untrained bundle, once per session), `launcher` (nodes
started through launch_plan.plan and the one process runner, mtl_split_tools.processes: the
way `mtl-split launch` starts them, config/<node>.yaml as their --params-file; stopped at
teardown), `ros` (the driver node, mtl_split_tools.driver, in the test process; a wait that
times out quotes the end of every node log).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mtl_split_ros.launch_plan import LaunchArgs, plan
from mtl_split_tools.domain import PrivateDomain
from mtl_split_tools.processes import ChildProcess, NodeProcesses

DOMAIN = PrivateDomain().apply()  # held until the session ends
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32x32 mobilenetv3_small_100 bundle with tasks shape (4 classes) and scale (8)."""
    testing = pytest.importorskip("mtl_split_training.testing", reason="building a bundle needs torch/timm")
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    testing.make_tiny_bundle(out, size=32)
    return out


class Launcher(NodeProcesses):
    """Nodes of a test module, each started from its own launch plan."""

    def node(self, key: str, params: dict[str, Any], namespace: str = "",
             remaps: dict[str, str] | None = None) -> ChildProcess:
        """key: "edge" or "server"; params: its parameters, "bundle" included."""
        params = dict(params)
        [planned] = plan(key, LaunchArgs(bundle=params.pop("bundle"), namespace=namespace,
                                         overrides={key: params}, remaps=remaps or {}))
        return self.add(planned)


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    with Launcher(log_dir=tmp_path_factory.mktemp("node_logs")) as launcher:
        yield launcher


@pytest.fixture(scope="module")
def ros(launcher: Launcher, request: pytest.FixtureRequest) -> Iterator[Any]:
    pytest.importorskip("rclpy", reason="needs the ROS 2 wheels (make setup)")
    from mtl_split_tools.driver import DriverNode

    with DriverNode(f"test_{request.module.__name__.rsplit('.', 1)[-1]}",
                    describe_failure=lambda: f"node logs:\n{launcher.logs()}") as driver:
        yield driver
