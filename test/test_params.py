"""The parameter rules of both nodes (params.py), without ROS: what a set is refused for, in
which lifecycle state, and with which reason; and the shard assignment of a fleet."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtl_split_core.shards import parse_shard, robot_namespace, shard_of
from mtl_split_ros.params import ACTIVATE, CONFIGURE, EDGE, LIVE, NODES, SERVER, STARTUP

STATES = ("unconfigured", "inactive", "active")


def refused(spec, changes, state="active", current=None):
    return spec.check_set(current or spec.defaults(), changes, state, "/ns/node")


@pytest.mark.parametrize("name, value, says", [
    # failure 1: accepted, then a ValueError out of the discovery timer killed the server
    ("results_qos_reliability", "foo", "must be one of 'reliable', 'best_effort'"),
    ("diagnostics_period_s", "abc", "must be a number"),
    ("features_qos_depth", 0, "must be >= 1"),
    # failures 3 and 4: zero periods spun, negative ones ended in tracebacks
    ("discovery_period_s", 0, "must be >= 0.1"),
    ("diagnostics_period_s", 0.0, "must be >= 0.05"),
    ("diagnostics_period_s", -1.0, "must be >= 0.05"),
    ("discovery_period_s", -1, "must be >= 0.1"),
    ("discovery_period_s", float("nan"), "finite"),
    ("max_batch", 0, "must be >= 1"),
    ("max_batch", True, "must be an integer"),
    ("discover", 1, "must be true or false"),
    ("features_topics", "a", "must be a list of strings"),
    ("shard", "2/2", "0 <= index < count"),
    ("shard", "x", "index/count"),
    ("source_timeout_s", 0.0, "must be >= 0.5"),
])
def test_invalid_values_are_refused_in_every_state_with_the_reason(name, value, says):
    for state in STATES:
        reason = refused(SERVER, {name: value}, state)
        assert reason is not None and reason.startswith(f"{name}: ") and says in reason, (state, reason)


def test_every_node_refuses_what_it_cannot_serve():
    assert "nothing to serve" in refused(SERVER, {"discover": False})
    assert refused(SERVER, {"discover": False}, current={**SERVER.defaults(), "features_topics": ["/a/f"]}) is None
    assert "is empty" in refused(EDGE, {"image_topics": []}, "unconfigured")
    two = {**EDGE.defaults(), "image_topics": ["/a", "/b"]}
    assert "max_wait_ms must be > 0" in refused(EDGE, {"max_wait_ms": 0}, "unconfigured", two)
    assert refused(EDGE, {"max_wait_ms": 0, "batch_cameras": False}, "unconfigured", two) is None


@pytest.mark.parametrize("applies, allowed", [(LIVE, STATES), (ACTIVATE, ("unconfigured", "inactive")),
                                              (CONFIGURE, ("unconfigured",)), (STARTUP, ())])
def test_a_change_is_accepted_only_in_the_states_where_it_takes_effect(applies, allowed):
    for spec in NODES.values():
        current = {**spec.defaults(), **({"features_topics": ["/a/mtl_split/features"]} if spec is SERVER else {})}
        for p in spec.params:
            if p.applies != applies or p.name == "bundle":
                continue
            new = _another_value(p)
            for state in STATES:
                reason = refused(spec, {p.name: new}, state, current)
                if state in allowed:
                    assert reason is None, (p.name, state, reason)
                else:
                    assert reason and "takes effect at" in reason and f"the node is {state}" in reason, (p.name, state)
                    assert "ros2 lifecycle set /ns/node" in reason or "restart the node" in reason
                # Setting the value it already has is always fine (e.g. a params file re-loaded).
                assert refused(spec, {p.name: p.default}, state) is None


def _another_value(p):
    if p.choices:
        return next(c for c in p.choices if c != p.default)
    if p.name == "shard":
        return "1/2"
    return {"bool": lambda: not p.default, "integer": lambda: int(p.low if p.low is not None else 0) + 1,
            "double": lambda: min(float(p.low or 0) + 1.5, (p.low + p.high) / 2 if p.high is not None else math.inf),
            "string": lambda: "/other",
            "string_array": lambda: ["/other"]}[p.type]()


def test_doubles_take_integers_and_problems_name_every_bad_start_up_value():
    assert refused(SERVER, {"discovery_period_s": 2}) is None
    assert SERVER.param("discovery_period_s").convert(2) == 2.0
    bad = {**SERVER.defaults(), "results_qos_depth": -3, "max_wait_ms": "x"}
    assert SERVER.problems(bad) == ["parameter results_qos_depth: must be >= 1, got -3 (range 1 .. 10000)",
                                    "parameter max_wait_ms: must be a number, got 'x'"]
    assert SERVER.problems(SERVER.defaults()) == [] and EDGE.problems(EDGE.defaults()) == []
    assert refused(SERVER, {"use_sim_time": True}) is None  # not ours: rclpy's business


# --- shards ------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(namespaces=st.lists(st.text(min_size=1, max_size=24).map(lambda s: "/" + s.strip("/")), max_size=40),
       count=st.integers(1, 9))
def test_every_robot_is_served_by_exactly_one_shard(namespaces, count):
    shards = [parse_shard(f"{i}/{count}") for i in range(count)]
    for ns in namespaces:
        assert sum(s.serves(ns) for s in shards) == 1
        assert shard_of(ns, count) == shard_of(ns + "/", count)  # a trailing slash names the same robot


def test_shards_are_stable_and_split_a_fleet_roughly_evenly():
    # Stable across processes and machines (not Python's salted hash): pinned values.
    assert [shard_of(f"/robot_{i}", 2) for i in range(8)] == [shard_of(f"/robot_{i}", 2) for i in range(8)]
    assert shard_of("/robot_0", 1) == 0
    fleet = [f"/robot_{i}" for i in range(64)]
    sizes = [sum(shard_of(ns, 2) == i for ns in fleet) for i in range(2)]
    assert min(sizes) >= 24, sizes
    assert robot_namespace("/robot_a/mtl_split/features") == "/robot_a"
    assert robot_namespace("/mtl_split/features") == ""
    for bad in ("", "1", "1/0", "-1/2", "a/b", "2/2"):
        with pytest.raises(ValueError):
            parse_shard(bad)
