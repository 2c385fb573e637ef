"""Entropy coder and temporal coding, ROS-free: round trips for any tables, shapes and
symbols; pinned bytes (the integer tables alone define the code on every machine); corrupt
payloads raise CodecError only; a delta frame never decodes against the wrong reference."""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mtl_split_core import codec
from mtl_split_core.entropy import (
    TOTAL,
    EntropyCoder,
    SymbolTables,
    load_tables,
    quantize_pmf,
    save_tables,
)
from mtl_split_core.errors import CodecError
from mtl_split_core.temporal import ResyncPending, StreamTable, TemporalDecoder, TemporalEncoder


@st.composite
def coded_tensors(draw: st.DrawFn) -> tuple[SymbolTables, np.ndarray]:
    """Tables of any peakedness (including zero probabilities) and symbols drawn anywhere in range."""
    channels = draw(st.integers(1, 6))
    n = draw(st.integers(2, 300))
    pmf = draw(hnp.arrays(np.float64, (channels, n), elements=st.floats(0, 1e6)))
    pmf[:, draw(st.integers(0, n - 1))] += 1.0  # every row normalizable
    offset = draw(st.integers(-300, 300))
    rest = tuple(draw(st.lists(st.integers(0, 6), max_size=3)))
    symbols = draw(hnp.arrays(np.int64, (channels, *rest), elements=st.integers(offset, offset + n - 1)))
    return SymbolTables(offset, quantize_pmf(pmf)), symbols


@settings(max_examples=300, deadline=None)
@given(case=coded_tensors())
def test_roundtrip_is_exact_for_any_tables_shapes_and_symbols(case):
    tables, symbols = case
    assert (tables.weights.sum(axis=1) == TOTAL - tables.weights.shape[1]).all()
    coder = EntropyCoder(tables)
    data = coder.encode(symbols)
    np.testing.assert_array_equal(coder.decode(data, symbols.shape), symbols)
    # A fresh coder from the same integers (another process, another machine) decodes it too.
    np.testing.assert_array_equal(EntropyCoder(SymbolTables(tables.offset, tables.weights.copy()))
                                  .decode(data, symbols.shape), symbols)
    # Within a few bytes of the tables' ideal code length (ANS flushes at most one 32-bit word).
    assert len(data) <= tables.bits(symbols) / 8 + 8


@settings(max_examples=200, deadline=None)
@given(case=coded_tensors(), junk=st.binary(max_size=64), cut=st.integers(0, 64), flip=st.integers(0, 511))
def test_corrupt_payloads_raise_codec_error_or_decode_in_range(case, junk, cut, flip):
    tables, symbols = case
    coder = EntropyCoder(tables)
    data = bytearray(coder.encode(symbols))
    variants = [bytes(junk), bytes(data[:cut]), bytes(data) + junk]
    if data:
        data[flip % len(data)] ^= 1 << (flip % 8)
        variants.append(bytes(data))
    lo, hi = tables.symbols
    for v in variants:
        try:
            out = coder.decode(v, symbols.shape)
        except CodecError:
            continue
        assert out.shape == symbols.shape and (out.size == 0 or (out.min() >= lo and out.max() <= hi))


def test_bytes_are_pinned_by_the_integer_tables():
    """Golden output: a constriction release or a machine that built another model from the
    same integers would change these bytes (and break decoding against older peers)."""
    levels = np.abs(np.arange(-127, 128, dtype=np.int64))
    raw = np.stack([(128 - levels).astype(object) ** k for k in (2, 6, 20)])  # Python integers, no libm
    free = TOTAL - raw.shape[1]
    weights = raw * free // raw.sum(axis=1, keepdims=True)
    weights[:, 127] += free - weights.sum(axis=1)
    tables = SymbolTables(-127, weights.astype(np.int64))
    symbols = ((np.arange(3 * 7 * 7).reshape(3, 7, 7) * 37) % 11 - 5).astype(np.int8)
    data = EntropyCoder(tables).encode(symbols)
    assert (len(data), hashlib.sha256(data).hexdigest()[:16]) == (101, "32869af08e9ef11f")


def test_tables_are_validated_and_saved_without_pickle(tmp_path):
    good = SymbolTables(-2, quantize_pmf(np.ones((2, 5))))
    save_tables(tmp_path / "t.npz", {"intra": good})
    loaded = load_tables(tmp_path / "t.npz")["intra"]
    assert loaded.offset == -2 and (loaded.weights == good.weights).all()
    for bad in (good.weights + 1, -good.weights, good.weights[:, :1], good.weights.astype(np.float64)):
        with pytest.raises(CodecError):
            SymbolTables(0, bad)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(CodecError, match="re-export"):
        load_tables(tmp_path / "bad.npz")


def test_out_of_range_symbols_and_wrong_channels_are_refused():
    coder = EntropyCoder(SymbolTables(0, quantize_pmf(np.ones((2, 4)))))
    with pytest.raises(CodecError, match="range"):
        coder.encode(np.array([[0, 4], [1, 1]]))
    with pytest.raises(CodecError, match="channel"):
        coder.encode(np.zeros((3, 2), np.int64))
    with pytest.raises(CodecError, match="channels"):
        coder.decode(b"\1", (3, 2))


# --- temporal coding ------------------------------------------------------------------------

def _coders(channels: int = 4) -> tuple[EntropyCoder, EntropyCoder]:
    levels = np.arange(-127, 128)
    intra = SymbolTables(-127, quantize_pmf(np.exp(-np.abs(levels) / 8.0)[None].repeat(channels, 0)))
    residual = SymbolTables(-254, quantize_pmf(np.exp(-np.abs(np.arange(-254, 255)) / 0.5)[None].repeat(channels, 0)))
    return EntropyCoder(intra), EntropyCoder(residual)


def _clip(n: int, seed: int = 0, channels: int = 4) -> list[np.ndarray]:
    """A slowly changing int8 'feature' sequence, like a coherent camera's bottleneck."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-20, 21, (channels, 3, 3))
    frames = []
    for _ in range(n):
        q = np.clip(q + (rng.random(q.shape) < 0.1) * rng.integers(-1, 2, q.shape), -127, 127)
        frames.append(q.astype(np.int8))
    return frames


def _template(q: np.ndarray) -> codec.EncodedFeatures:
    return codec.quantize(q.astype(np.float32), "int8", scale=1.0, zero_point=0)[1]


def _sent(frames: list[np.ndarray], interval: int, stream: str = "cam", dead_zone: int = 0
          ) -> list[codec.EncodedFeatures]:
    enc = TemporalEncoder(*_coders(frames[0].shape[0]), keyframe_interval=interval, dead_zone=dead_zone)
    return [enc.encode(stream, q, _template(q), now=float(i)) for i, q in enumerate(frames)]


def test_deltas_are_smaller_and_decode_exactly():
    frames = _clip(40)
    sent = _sent(frames, interval=20)
    assert [e.frame for e in sent].count("key") == 2 and sent[20].frame == "key"
    keys_only = _sent(frames, interval=1)
    assert sum(len(e.data) for e in sent) < 0.6 * sum(len(e.data) for e in keys_only)
    dec = TemporalDecoder(*_coders())
    for i, (e, q) in enumerate(zip(sent, frames)):
        np.testing.assert_array_equal(dec.symbols("cam", e, now=float(i)), q)


def test_scene_change_forces_a_keyframe():
    frames = _clip(10) + _clip(10, seed=99)
    sent = _sent(frames, interval=100)
    assert sent[10].frame == "key" and sum(e.frame == "key" for e in sent) == 2


@pytest.mark.parametrize("dead_zone", [0, 1, 3])
def test_dead_zone_stays_within_its_bound_never_drifts_and_skips_unchanged_frames(dead_zone):
    frames = _clip(60, seed=3)
    frames[30:40] = [frames[30]] * 10  # the camera stops: nothing changes
    sent = _sent(frames, interval=1000, dead_zone=dead_zone)
    dec = TemporalDecoder(*_coders())
    previous = None
    for i, (e, q) in enumerate(zip(sent, frames)):
        got = dec.symbols("cam", e, now=float(i))
        # Never further than the dead zone from the edge's symbols, however long the chain.
        assert np.abs(got.astype(int) - q.astype(int)).max() <= dead_zone
        if e.frame == "skip":
            assert e.data == b"" and e.wire_bytes == 2  # the source size (0, 0) alone
            np.testing.assert_array_equal(got, previous)
        previous = got
    kinds = [e.frame for e in sent]
    assert kinds[0] == "key" and set(kinds[31:40]) == {"skip"}
    lossless = sum(len(e.data) for e in _sent(frames, interval=1000))
    coded = sum(len(e.data) for e in sent)
    assert coded <= lossless and (dead_zone == 0 or kinds.count("skip") > 9 and coded < lossless)


@pytest.mark.parametrize("fault", ["drop", "reorder", "expire", "drop_skip"])
def test_after_a_lost_or_reordered_frame_nothing_wrong_until_the_next_keyframe(fault):
    frames = _clip(30)
    if fault == "drop_skip":  # the lost frame is a skip frame: what follows refers to it all the same
        frames[3] = frames[4] = frames[2]
    sent = _sent(frames, interval=10)
    assert fault != "drop_skip" or sent[4].frame == "skip"
    order = list(range(30))
    if fault in ("drop", "drop_skip"):
        del order[4]
    elif fault == "reorder":
        order[4], order[5] = order[5], order[4]
    dec = TemporalDecoder(*_coders(), streams=StreamTable(max_age_s=5.0))
    decoded, dropped = {}, []
    for t, i in enumerate(order):
        now = float(t) + (100.0 if fault == "expire" and i >= 4 else 0.0)
        try:
            decoded[i] = dec.symbols("cam", sent[i], now=now)
        except ResyncPending:
            dropped.append(i)
    for i, q in decoded.items():
        np.testing.assert_array_equal(q, frames[i])  # never a wrong result
    # Everything from the fault to the next keyframe (frame 10) is dropped, then it resyncs.
    assert sorted(dropped) == list(range(4 if fault in ("reorder", "expire") else 5, 10)) and 10 in decoded
    assert dec.resync_dropped == len(dropped)


def test_streams_do_not_mix_and_state_is_bounded():
    a, b = _clip(6, seed=1), _clip(6, seed=2)
    sa, sb = _sent(a, 10, "a"), _sent(b, 10, "b")
    dec = TemporalDecoder(*_coders(), streams=StreamTable(max_streams=2))
    for i in range(6):
        np.testing.assert_array_equal(dec.symbols("a", sa[i], now=i), a[i])
        np.testing.assert_array_equal(dec.symbols("b", sb[i], now=i), b[i])
    with pytest.raises(ResyncPending):  # b's next delta presented as a's: sequence matches, stream does not
        dec.symbols("c", sb[1], now=7)
    for k in range(5):  # many short-lived streams: at most max_streams kept
        dec.symbols(f"s{k}", sa[0], now=8)
    assert len(dec.streams) == 2 and dec.streams.evicted >= 4


def test_message_layout_is_compact_and_round_trips():
    serialization = pytest.importorskip("rclpy.serialization", reason="needs the ROS 2 wheels (make setup)")
    msgs = pytest.importorskip("mtl_split.msg", reason="needs the colcon-built messages (make setup)")
    from std_msgs.msg import Header

    x = np.random.default_rng(0).standard_normal((16, 2, 2)).astype(np.float32)
    for enc, size in ((codec.encode(x, "int8", "none", scale=1 / 127, zero_point=0), (1920, 1080)),
                      (codec.encode(x, "int8", "zstd", per_channel=True), (64, 48)),
                      (codec.encode(x, "float16"), (0, 0))):
        enc = dataclasses.replace(enc, source_size=size)
        for frame_id in ("", "cam", "camera", "front_left_camera_optical"):
            msg = codec.to_message(enc, msgs.SharedFeatures(header=Header(frame_id=frame_id)))
            msg.model_fingerprint = np.frombuffer(codec.fingerprint("mtl-x"), np.uint8)
            empty = msgs.SharedFeatures(header=Header(frame_id=frame_id))
            fixed = len(serialization.serialize_message(empty)) - len(serialization.serialize_message(Header(frame_id=frame_id)))
            assert fixed <= 32
            wire = serialization.serialize_message(msg)
            assert len(wire) <= len(serialization.serialize_message(empty)) + enc.wire_bytes + 3
            back = codec.from_message(serialization.deserialize_message(wire, msgs.SharedFeatures))
            assert back.shape == enc.shape and back.quantization == enc.quantization and back.source_size == size
            if enc.quantization != "model":
                np.testing.assert_array_equal(codec.decode(back), codec.decode(enc))
    # A skip frame is the fixed fields and the source frame's size: no shape, no payload.
    skip = codec.EncodedFeatures("int8", (16, 2, 2), np.ones(1, np.float32), np.zeros(1, np.int32), "entropy", b"",
                                 "model", "skip", 7, (640, 480))
    msg = codec.to_message(skip, msgs.SharedFeatures(header=Header(frame_id="camera")))
    assert len(msg.data) == 4  # two 2-byte varints
    back = codec.from_message(serialization.deserialize_message(serialization.serialize_message(msg),
                                                                msgs.SharedFeatures))
    assert (back.frame, back.sequence, len(back.data), back.source_size) == ("skip", 7, 0, (640, 480))
