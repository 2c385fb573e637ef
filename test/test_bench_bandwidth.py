"""`mtl-split bench bandwidth` and `bench split` + `mtl-split plan` at their tiniest: real
(tiny) training runs, real exports, real ONNX Runtime, real serialized ROS messages."""
from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.training, pytest.mark.ros]

TINY = ["--epochs", "1", "--train-size", "64", "--frames", "40"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    pytest.importorskip("mtl_split_training.testing", reason="training needs torch/timm")
    pytest.importorskip("rclpy", reason="message sizes need the ROS 2 wheels (make setup)")
    return tmp_path_factory.mktemp("bench_work")


def test_bandwidth_bench_is_consistent(work, tmp_path):
    from mtl_split_tools.cli import main

    out = tmp_path / "bandwidth.json"
    assert main(["bench", "bandwidth", "--size", "32", "--bottleneck", "8", *TINY, "--out", str(out),
                 "--work", str(work)]) == 0
    result = json.loads(out.read_text())
    rows = {r["name"]: r for r in result["rows"]}
    size = 32 * 32 * 3
    assert rows["raw rgb8"]["payload_bytes"] == size
    # Lossless image codecs give the float32 pipeline's exact predictions.
    assert rows["PNG"]["accuracy"] == rows["raw rgb8"]["accuracy"] == rows["float32"]["accuracy"]
    assert rows["float16"]["payload_bytes"] < rows["float32"]["payload_bytes"]
    assert rows["int8"]["payload_bytes"] < rows["float16"]["payload_bytes"]
    assert rows["bottleneck8+int8"]["payload_bytes"] < rows["int8"]["payload_bytes"]
    assert all(r["message_bytes"] > r["payload_bytes"] > 0 for r in rows.values())
    assert all(0 <= a <= 1 for r in rows.values() for a in r["accuracy"].values())
    h = result["headline"]
    for unit in ("message", "payload"):
        u = h[unit]
        assert u["compact_bytes"] == rows[h["compact"]][f"{unit}_bytes"]
        assert u["ratio_vs_jpeg90"] == pytest.approx(rows["JPEG-90"][f"{unit}_bytes"] / u["compact_bytes"], rel=0.01)
        assert u["aim_met"] == (u["ratio_vs_jpeg90"] >= 10 and h["accuracy_points_vs_float32"] >= -1)
    assert out.with_suffix(".png").stat().st_size > 0


def test_split_bench_and_plan(work, tmp_path, capsys):
    from mtl_split_tools.cli import main
    from mtl_split_tools.plan_command import load_measurement, plan

    out = tmp_path / "split.json"
    assert main(["bench", "split", "--size", "32", "--trained-size", "32", *TINY, "--out", str(out),
                 "--work", str(work)]) == 0
    result = json.loads(out.read_text())
    random, trained = result["measurements"]
    assert random["accuracy_measured"] is False and trained["accuracy_measured"] is True
    for m in (random, trained):
        idx = [r["split_index"] for r in m["rows"]]
        assert idx == list(range(len(idx))) and len(idx) >= 3
        for r in m["rows"]:
            c = r["codecs"]
            assert c["float32"]["payload_bytes"] > c["float16"]["payload_bytes"] > c["int8"]["payload_bytes"]
            assert r["edge_ms"] > 0 and r["server_ms"] > 0
    # Same weights cut elsewhere: float32 accuracy must not depend on the split point (up to
    # one frame whose near-tied logits may flip with float rounding).
    for task in trained["tasks"]:
        accs = [r["codecs"]["float32"]["accuracy"][task] for r in trained["rows"]]
        assert max(accs) - min(accs) <= 1 / trained["frames"] + 1e-9

    m = load_measurement(out, "mobilenetv3_small_100", 32)
    assert m == trained
    ranked = plan(m, mbps=1.1)
    assert ranked == sorted(ranked, key=lambda c: (c["why_not"] is not None, c["total_ms"]))
    slow_link = plan(m, mbps=0.01)[0]
    assert slow_link["deployment"].startswith("whole model on the edge")  # nothing beats sending nothing
    tight = plan(m, mbps=1000, edge_ms=0.0)
    assert all(c["why_not"] for c in tight)

    assert main(["plan", "--backbone", "mobilenetv3_small_100", "--size", "32", "--bandwidth", "5.85",
                 "--report", str(out)]) == 0
    assert "recommended:" in capsys.readouterr().out
    assert main(["plan", "--backbone", "vgg16", "--bandwidth", "5.85", "--report", str(out)]) == 2
    assert main(["plan", "--backbone", "vgg16", "--bandwidth", "5.85", "--report", str(tmp_path / "no.json")]) == 2


def test_codecs_bench_rows_and_dead_zones(work, tmp_path):
    """`bench codecs` at its tiniest: every row kind, and temporal coding at each dead zone -
    a lossy row never costs more than the lossless one, and skip frames are counted. The
    bottlenecks (4 channels) start from the float32 split (--warm-start)."""
    from mtl_split_tools.cli import main

    out = tmp_path / "codecs.json"
    assert main(["bench", "codecs", "--sizes", "32", "--epochs", "1", "--train-size", "64", "--frames", "30",
                 "--clips", "2", "--clip-length", "15", "--lambdas", "0.01", "--crfs", "28", "--dead-zones", "0,3",
                 "--bottleneck", "4", "--warm-start", "--out", str(out), "--work", str(work)]) == 0
    result = json.loads(out.read_text())["by_size"]["32"]
    training = result["training"]
    start = training["bottleneck"]["train"]["init_from"]
    assert start and training["lambda=0.01"]["train"]["distill_from"] == start
    assert training["lambda=0.01"]["model"]["bottleneck"] == 4 and "init_from" not in training["float32"]["train"]
    for kind in ("independent", "coherent"):
        rows = {r["name"]: r for r in result[kind]["rows"]}
        assert {"JPEG-90", "H.264 CRF 28", "H.265 CRF 28", "float32 (paper)", "bottleneck4 int8", "entropy lambda=0.01",
                "temporal lambda=0.01", "temporal lambda=0.01 dz=3"} <= set(rows)
        lossless, lossy = rows["temporal lambda=0.01"], rows["temporal lambda=0.01 dz=3"]
        assert (lossless["dead_zone"], lossy["dead_zone"], lossy["lambda"]) == (0, 3, 0.01)
        assert lossless["skip_frames"] <= lossy["skip_frames"]
        assert lossy["payload_bytes"] <= lossless["payload_bytes"] <= rows["entropy lambda=0.01"]["payload_bytes"]
        assert rows["entropy lambda=0.01"]["keyframes"] == result[kind]["frames"]
        assert all(0 <= r["mean_accuracy"] <= 1 and r["message_bytes"] > 0 for r in rows.values())
    assert result["coherent"]["streams"] == 2 and result["headline"]["coherent"]["row"]
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.parametrize("flag", [["--dead-zones", "0,-1"], ["--bottleneck", "0"]])
def test_codecs_bench_refuses_bad_options_in_one_line(flag, tmp_path, capsys):
    from mtl_split_tools.cli import main

    assert main(["bench", "codecs", *flag, "--out", str(tmp_path / "c.json"), "--work", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert flag[0] in err and "\n" not in err and not (tmp_path / "c.json").exists()


def test_codecs_headline_picks_the_smallest_of_equally_accurate_rows():
    from mtl_split_bench.codecs import headline

    def row(name, kind, size, acc, **extra):
        return {"name": name, "kind": kind, "message_bytes": size, "mean_accuracy": acc, "encode_ms": 0.1,
                "decode_ms": 0.1, **extra}

    independent = [row("float32 (paper)", "features", 9000, 0.99), row("JPEG-90", "image", 1400, 0.98),
                   row("entropy", "entropy", 100, 0.985), row("temporal", "temporal", 99, 0.985)]
    coherent = [row("H.264 CRF 23", "video", 150, 0.80, codec="H.264", crf=23),
                row("entropy", "entropy", 76, 0.77), row("temporal", "temporal", 66, 0.77)]
    h = headline(independent, coherent, 64)
    assert (h["independent"]["row"], h["coherent"]["row"]) == ("temporal", "temporal")
    assert not h["coherent"]["aim_met"] and h["coherent"]["fraction_of_h264"] == 0.44
