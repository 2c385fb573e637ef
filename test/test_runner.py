"""The pieces every run that starts nodes stands on: private DDS domains and the process
runner's stop (the nodes themselves are exercised through them by the ROS tests)."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from mtl_split_tools.domain import PIN_VARIABLE, PrivateDomain
from mtl_split_tools.processes import NodeProcesses


def test_concurrent_runs_claim_different_domains_and_give_them_back(monkeypatch):
    monkeypatch.delenv(PIN_VARIABLE, raising=False)
    session = os.environ.get("ROS_DOMAIN_ID")
    with PrivateDomain() as a, PrivateDomain() as b:
        assert len({a.domain_id, b.domain_id, int(session or 0)}) == 3  # the test session holds one too
        assert os.environ["ROS_DOMAIN_ID"] == str(b.domain_id)
        assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
        held = a.domain_id
    assert os.environ.get("ROS_DOMAIN_ID") == session  # the environment is given back
    claims = [PrivateDomain() for _ in range(20)]
    try:
        assert len({c.domain_id for c in claims}) == 20
    finally:
        for c in claims:
            c.release()
    monkeypatch.setenv(PIN_VARIABLE, str(held))
    with PrivateDomain() as pinned:
        assert pinned.domain_id == held


STUBBORN = """
import signal, sys, time
for name in sys.argv[1:]:
    signal.signal(getattr(signal, name), lambda *a: print("ignored", flush=True))
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("ignores, exit_code", [([], -signal.SIGINT), (["SIGINT"], -signal.SIGTERM),
                                                (["SIGINT", "SIGTERM"], -signal.SIGKILL)])
def test_stop_escalates_sigint_sigterm_sigkill(tmp_path, ignores, exit_code):
    with NodeProcesses(log_dir=tmp_path) as procs:
        child = procs.run("stubborn", [sys.executable, "-c", STUBBORN, *ignores])
        while "ready" not in child.log():
            assert child.alive, child.log()
            time.sleep(0.02)
        code = child.stop(timeout=0.5)
    assert code == exit_code
    assert child.log().count("ignored") == len(ignores)
    assert procs.dead() == {"stubborn": exit_code}
