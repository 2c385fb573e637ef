"""Preprocessing at camera resolution: resize / center_crop / letterbox geometry for any frame
size and aspect ratio, the area filter, colour conversion after shrinking, padded rows, JPEG
reduced decoding, and the max-pixels refusal from headers (decompression bombs)."""
from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from mtl_split_core.bundle import RESIZE_MODES, InputSpec, load_manifest
from mtl_split_core.errors import BundleError, ImageError, ImageTooLarge
from mtl_split_core.image_header import read_header
from mtl_split_core.imaging import decode, to_array
from mtl_split_core.preprocess import (
    LETTERBOX_PAD, Decoded, area_resize, camera_size, fit, geometry, jpeg_reduction, preprocess)

from helpers import png_claiming
from test_imaging import _rosbags_types, image_msg

SIZES = [(1280, 720), (1920, 1080), (1080, 1920), (1281, 721), (4000, 3000), (641, 1), (1, 480), (224, 224)]
SPEC = InputSpec(width=224, height=160)


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB frame with some edges: what a camera sees, at any size."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(height // 40, 2), max(width // 40, 2), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("size", SIZES)
def test_every_mode_gives_the_input_shape_and_keeps_what_it_promises(mode, size):
    width, height = size
    spec = InputSpec(width=224, height=160, resize_mode=mode)
    g = geometry(width, height, spec)
    (sx, sy, sw, sh), (tx, ty, tw, th) = g.source, g.target
    assert 0 <= sx and sx + sw <= width and 0 <= sy and sy + sh <= height
    assert 0 <= tx and tx + tw <= 224 and 0 <= ty and ty + th <= 160
    if mode == "resize":
        assert g.source == (0, 0, width, height) and g.target == (0, 0, 224, 160)
    elif mode == "center_crop":  # the kept part has the input's aspect ratio, centred
        assert g.target == (0, 0, 224, 160)
        assert abs(sw - sh * 224 / 160) <= 1 or abs(sh - sw * 160 / 224) <= 1
        assert abs((width - sw) - 2 * sx) <= 1 and abs((height - sh) - 2 * sy) <= 1
    else:  # letterbox: all of the frame, its aspect ratio kept, centred, touching two sides
        assert g.source == (0, 0, width, height)
        assert tw == 224 or th == 160
        scale = min(224 / width, 160 / height)
        assert abs(tw - width * scale) <= 1 and abs(th - height * scale) <= 1
    out = fit(scene(width, height), spec)
    assert out.shape == (160, 224, 3) and out.dtype == np.uint8
    if mode == "letterbox" and (tw, th) != (224, 160):
        pad = np.ones(out.shape[:2], bool)
        pad[ty:ty + th, tx:tx + tw] = False
        assert (out[pad] == LETTERBOX_PAD).all()


def test_center_crop_keeps_the_centre_and_letterbox_the_whole_frame():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[:, :200] = 255  # a white band on the left, outside the central 4:3 crop (x >= 240)
    crop = fit(frame, InputSpec(width=64, height=48, resize_mode="center_crop"))
    box = fit(frame, InputSpec(width=64, height=48, resize_mode="letterbox"))
    stretch = fit(frame, InputSpec(width=64, height=48))
    assert crop.max() == 0  # the band is cut off
    assert box[18:30, :4].min() == 255 and (box[:5] == LETTERBOX_PAD).all()  # kept, bars above/below
    assert stretch[:, :5].min() == 255 and stretch[:, 10:].max() == 0


def test_area_filter_does_not_alias():
    stripes = np.zeros((1080, 1920, 3), np.uint8)
    stripes[:, ::2] = 255  # the finest detail a camera can give
    out = area_resize(stripes, 224, 224)
    assert abs(float(out.mean()) - 127.5) < 2 and out.std() < 2  # averaged to grey, no moire
    nearest = cv2.resize(stripes, (224, 224), interpolation=cv2.INTER_NEAREST)
    assert nearest.std() > 50  # what a non-area filter makes of it
    smooth = scene(1920, 1080)
    exact = cv2.resize(smooth, (224, 224), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(area_resize(smooth, 224, 224).astype(int) - exact).mean() < 1.5
    assert area_resize(smooth, 1920, 1080) is smooth  # right size: no copy


@pytest.mark.parametrize("encoding", ["bgr8", "mono8", "rgba8", "bgra8", "rgb16", "mono16"])
def test_colour_after_shrinking_equals_colour_first(encoding):
    rgb = scene(641, 359)
    native = {"bgr8": rgb[..., ::-1], "mono8": rgb[..., 1], "rgba8": np.dstack([rgb, rgb[..., :1]]),
              "bgra8": np.dstack([rgb[..., ::-1], rgb[..., :1]]), "rgb16": rgb.astype(np.uint16) * 257,
              "mono16": rgb[..., 1].astype(np.uint16) * 257}[encoding]
    out = fit(Decoded(np.ascontiguousarray(native), encoding), SPEC)
    reference = fit(rgb if "mono" not in encoding else np.dstack([rgb[..., 1]] * 3), SPEC)
    assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1


@pytest.mark.parametrize("pad", [0, 1, 7])
@pytest.mark.parametrize("width", [640, 641, 1281])
def test_padded_rows_and_odd_widths_are_read_in_place(pad, width):
    image, _ = _rosbags_types()
    rgb = scene(width, 361)
    msg = image_msg(image, "rgb8", rgb, pad)
    frame = decode(msg)
    assert frame.image.shape == rgb.shape and np.shares_memory(frame.image, msg.data)  # a view, no copy
    np.testing.assert_array_equal(frame.image, rgb)
    np.testing.assert_array_equal(preprocess([frame], SPEC), preprocess([rgb], SPEC))


def test_batch_of_different_sizes_and_modes():
    frames = [scene(w, h, i) for i, (w, h) in enumerate(SIZES[:4])]
    for mode in RESIZE_MODES:
        x = preprocess(frames, InputSpec(width=32, height=24, resize_mode=mode))
        assert x.shape == (4, 3, 24, 32) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]


def test_jpeg_is_decoded_reduced_when_the_input_is_small():
    _, compressed = _rosbags_types()
    rgb = scene(1920, 1080)
    jpeg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    msg = compressed(format="jpeg", data=jpeg)
    spec = InputSpec(width=224, height=224)
    assert jpeg_reduction(1920, 1080, spec) == 4  # 1080 / 4 = 270 >= 224 rows
    assert jpeg_reduction(1920, 1080, InputSpec(width=224, height=224, resize_mode="letterbox")) == 8
    assert jpeg_reduction(640, 480, spec) == 2 and jpeg_reduction(300, 300, spec) == 1
    reduced = decode(msg, reduce_for=spec)
    assert reduced.image.shape[:2] == (270, 480)
    assert camera_size(reduced) == (1920, 1080)  # what SharedFeatures says: dense results go on this grid
    full = preprocess([decode(msg)], spec)
    small = preprocess([reduced], spec)
    assert np.abs(full - small).mean() < 0.05  # in normalized units (1/255/0.225 = 0.017 per grey level)


def test_headers_give_the_size_of_every_jpeg_and_png():
    rgb = scene(333, 97)
    cases = {
        ".jpg": (rgb, "jpeg", 3), ".png": (rgb, "png", 3),
        "progressive": (rgb, "jpeg", 3), "grey.jpg": (rgb[..., 0], "jpeg", 1),
        "rgba.png": (np.dstack([rgb, rgb[..., :1]]), "png", 4), "16bit.png": (rgb.astype(np.uint16), "png", 3),
    }
    for name, (img, fmt, channels) in cases.items():
        ext = ".jpg" if "jpg" in name or name == "progressive" else ".png"
        params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if name == "progressive" else []
        header = read_header(cv2.imencode(ext, img, params)[1].tobytes())
        assert (header.format, header.width, header.height, header.channels) == (fmt, 333, 97, channels), name
    for bad in (b"", b"GIF89a....", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\x89PNG\r\n\x1a\n\x00\x00"):
        with pytest.raises(ImageError):
            read_header(bad)


def test_a_decompression_bomb_is_refused_from_its_header_in_microseconds():
    _, compressed = _rosbags_types()
    bomb = png_claiming(20000, 20000)
    assert len(bomb) < 200_000
    msg = compressed(format="png", data=bomb)
    start = time.perf_counter()
    for _ in range(100):
        with pytest.raises(ImageTooLarge, match="20000x20000"):
            decode(msg, max_pixels=40_000_000)
    assert (time.perf_counter() - start) / 100 < 0.005  # header only (decoding it takes seconds)
    jpeg = compressed(format="jpeg", data=cv2.imencode(".jpg", scene(400, 300))[1].tobytes())
    with pytest.raises(ImageTooLarge, match="400x300"):
        decode(jpeg, max_pixels=100_000)
    assert decode(jpeg, max_pixels=120_000).image.shape == (300, 400, 3)


def test_a_raw_image_is_checked_against_max_pixels_before_its_data():
    image, _ = _rosbags_types()
    huge = image(height=20000, width=20000, encoding="rgb8", is_bigendian=0, step=60000, data=b"\0" * 16)
    with pytest.raises(ImageTooLarge, match="max_pixels"):
        decode(huge)
    ok = image_msg(image, "rgb8", scene(64, 48))
    with pytest.raises(ImageTooLarge):
        to_array(ok, max_pixels=64 * 48 - 1)
    assert to_array(ok, max_pixels=64 * 48).shape == (48, 64, 3)


def test_input_spec_checks_its_mode_and_old_manifests_still_load(tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match="resize_mode"):
        InputSpec(width=8, height=8, resize_mode="stretch_more")
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["input"]["resize_mode"] == "resize"
    # A manifest written before resize_mode existed keeps its model_id (hashed as written).
    from mtl_split_core.bundle import content_id

    del manifest["input"]["resize_mode"]
    manifest["model_id"] = content_id(manifest)
    old = tmp_path / "old"
    old.mkdir()
    for f in tiny_bundle.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert load_manifest(old).input.resize_mode == "resize"
