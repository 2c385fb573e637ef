"""Registries and `mtl-split list`: every registered name is listed and looked up by name."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from mtl_split_tools.cli import main  # noqa: E402
from mtl_split_training.commands import REGISTRIES  # noqa: E402
from mtl_split_training.errors import TrainingError  # noqa: E402
from mtl_split_training.registry import Registry  # noqa: E402

pytestmark = pytest.mark.training


def test_list_prints_every_registered_name(capsys):
    import importlib

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for what, (module, attr) in REGISTRIES.items():
        registry = getattr(importlib.import_module(module), attr)
        assert f"{what} (chosen by {registry.chosen_by}):" in out
        for entry in registry.entries():
            assert f"  {entry.name} " in out and entry.summary in out
    assert main(["list", "heads"]) == 0 and "weightings" not in capsys.readouterr().out


def test_list_of_an_unknown_registry_is_one_line(capsys):
    assert main(["list", "optimizers"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mtl-split list: error: nothing registered as optimizers; use backbones, heads, weightings, datasets"]


def test_registry_names_the_choices_and_refuses_a_second_entry():
    r: Registry[int] = Registry("gadget", "config.gadget")
    r.register("a", "first")(1)
    r.add("b", 2, "second")
    assert r.get("b") == 2 and "a" in r and r.names() == ("a", "b")
    with pytest.raises(TrainingError, match=r"unknown gadget 'c' \(config.gadget\): use one of a, b"):
        r.get("c")
    with pytest.raises(ValueError, match="registered twice"):
        r.add("a", 3, "again")
