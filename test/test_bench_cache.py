"""The benchmarks' cache of built models: built once per key, built again when the key
(the manifest schema version included) changes or a cached bundle no longer loads."""
from __future__ import annotations

from mtl_split_bench.bundles import cached_dir


def test_built_once_per_key_and_again_when_a_bundle_does_not_load(tmp_path, capsys):
    built = []

    def build(out):
        built.append(out)
        (out / "manifest.json").write_text("{not json")  # a bundle no release can load

    a = cached_dir(tmp_path, {"model": "m", "manifest_schema": 1}, build)
    assert cached_dir(tmp_path, {"model": "m", "manifest_schema": 1}, build) == a and len(built) == 1
    b = cached_dir(tmp_path, {"model": "m", "manifest_schema": 2}, build)
    assert b != a and len(built) == 2  # a new manifest schema: exported again, beside the old
    cached_dir(tmp_path, {"model": "m", "manifest_schema": 2}, build, is_bundle=True)
    assert len(built) == 3 and "does not load" in capsys.readouterr().out
    assert sorted(p.name for p in b.iterdir()) == ["bench_key.json", "manifest.json"]  # rebuilt from empty
