"""The server's dense post-processing, numpy only: box decoding, NMS, argmax masks, and the
mapping of results from the model input back onto the camera frame."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mtl_split_core.bundle import InputSpec
from mtl_split_core.dense import (UNLABELLED, Boxes, decode_detections, nms, postprocess, resample, scaled_size,
                                  to_frame, to_source)
from mtl_split_core.preprocess import geometry


def _output(classes: int = 2, grid: int = 8) -> np.ndarray:
    return np.zeros((classes + 4, grid, grid), np.float32)


def test_decoding_turns_heatmap_peaks_into_boxes():
    out = _output()
    out[1, 3, 4] = 0.9  # a peak, and a weaker neighbour that is not one
    out[1, 3, 5] = 0.5
    out[2:, 3, 4] = [4, 2, 4, 6]  # left, top, right, bottom in input pixels
    out[0, 6, 1] = 0.3
    out[2:, 6, 1] = [1, 1, 1, 1]
    out[0, 0, 7] = 0.05  # below the score threshold
    boxes = decode_detections(out, (32, 32))
    # cell (3, 4) of a 4-px grid has its centre at (18, 14)
    np.testing.assert_allclose(boxes.xyxy, [[14, 12, 22, 20], [5, 25, 7, 27]])
    assert boxes.classes.tolist() == [1, 0]
    np.testing.assert_allclose(boxes.scores, [0.9, 0.3])
    assert len(decode_detections(out, (32, 32), score_threshold=0.95)) == 0
    assert len(decode_detections(out, (32, 32), max_detections=1)) == 1


def test_decoded_boxes_are_clipped_to_the_image_and_scale_with_the_grid():
    out = _output(1, 4)
    out[0, 0, 0] = 0.8
    out[1:, 0, 0] = [100, 100, 3, 3]
    boxes = decode_detections(out, (64, 48))  # cells of 16 x 12 px: centre (8, 6)
    np.testing.assert_allclose(boxes.xyxy, [[0, 0, 11, 9]])


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
    boxes = Boxes([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [30, 30, 40, 40]], [0, 0, 1, 0],
                  [0.6, 0.9, 0.5, 0.7])
    kept = nms(boxes, 0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.5])  # best first
    assert kept.classes.tolist() == [0, 0, 1]  # the other class's box survives the overlap
    assert len(nms(boxes, 0.99)) == 4
    assert len(nms(Boxes(np.zeros((0, 4)), []))) == 0


def test_argmax_mask_and_depth():
    logits = np.zeros((3, 2, 2), np.float32)
    logits[2, 0, 1] = 1.0
    logits[1, 1, 0] = 2.0
    mask = postprocess("segmentation", logits, (2, 2))
    assert mask.dtype == np.uint8 and mask.tolist() == [[0, 2], [1, 0]]
    depth = postprocess("depth", np.full((1, 2, 2), 3.5, np.float32), (2, 2))
    assert depth.shape == (2, 2) and depth.dtype == np.float32


@pytest.mark.parametrize("mode", ["resize", "center_crop", "letterbox"])
def test_results_map_back_onto_the_camera_frame(mode):
    spec = InputSpec(width=32, height=32, resize_mode=mode)
    g = geometry(64, 48, spec)  # a 4:3 camera frame into a square input
    mask = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32) % 5
    out = to_source(mask, g, (64, 48))
    assert out.shape == (48, 64)
    depth = to_source(np.ones((32, 32), np.float32), g, (64, 48))
    box = to_source(Boxes([[g.target[0], g.target[1], g.target[0] + g.target[2], g.target[1] + g.target[3]]], [0]),
                    g, (64, 48))
    # The box covering the whole drawn region covers the kept source region.
    sx, sy, sw, sh = g.source
    np.testing.assert_allclose(box.xyxy, [[sx, sy, sx + sw, sy + sh]], atol=1e-4)
    if mode == "center_crop":  # the cut-off sides were never seen
        assert (out[:, :sx] == UNLABELLED).all() and np.isnan(depth[:, :sx]).all()
        assert not np.isnan(depth[:, sx:sx + sw]).any()
    else:
        assert not np.isnan(depth).any() and (out != UNLABELLED).all()


def _into_input(labels: np.ndarray, g) -> np.ndarray:
    """A camera-grid label image taken into the model input the way preprocess takes the frame
    (the kept source rectangle drawn into the target rectangle; padding 0)."""
    sx, sy, sw, sh = g.source
    tx, ty, tw, th = g.target
    out = np.zeros((32, 32), labels.dtype)
    out[ty:ty + th, tx:tx + tw] = cv2.resize(labels[sy:sy + sh, sx:sx + sw], (tw, th),
                                             interpolation=cv2.INTER_NEAREST_EXACT)
    return out


@pytest.mark.parametrize("size", [(128, 96), (96, 128), (100, 100)])
@pytest.mark.parametrize("mode", ["resize", "center_crop", "letterbox"])
def test_each_resize_mode_is_undone(mode, size):
    """Labels and boxes on the camera grid, taken into the model input by the mode's geometry
    and brought back by to_source, come back where they were (masks up to the pixels next to a
    label edge, which 4x nearest resampling moves), at the camera's grid and at half of it."""
    spec = InputSpec(width=32, height=32, resize_mode=mode)
    g = geometry(*size, spec)
    w, h = size
    labels = np.zeros((h, w), np.uint8)
    labels[h // 4:h // 2, w // 5:w // 2] = 1
    labels[h // 2:, w // 2:] = 2
    sx, sy, sw, sh = g.source
    for scale in (1.0, 0.5):
        back = to_source(_into_input(labels, g), g, size, scale)
        expected = resample(labels, size, scaled_size(size, scale))
        kept = np.zeros(back.shape, bool)
        kept[round(sy * scale):round((sy + sh) * scale), round(sx * scale):round((sx + sw) * scale)] = True
        assert back.shape == expected.shape and (back[~kept] == UNLABELLED).all()
        assert (back[kept] == expected[kept]).mean() > 0.93
    # A box on the camera frame, in input pixels (the forward map), back on the frame.
    camera_box = np.array([[sx + sw * 0.25, sy + sh * 0.3, sx + sw * 0.6, sy + sh * 0.9]], np.float32)
    tx, ty, tw, th = g.target
    k = np.array([tw / sw, th / sh] * 2, np.float32)
    box = Boxes((camera_box - [sx, sy, sx, sy]) * k + [tx, ty, tx, ty], [2], [0.7])
    np.testing.assert_allclose(to_source(box, g, size).xyxy, camera_box, atol=1e-3)
    np.testing.assert_allclose(to_source(box, g, size, 0.5).xyxy, camera_box / 2, atol=1e-3)
    if mode == "letterbox" and ty:  # a box wholly in the padding is no box on the frame
        assert len(to_source(Boxes([[4, 0, 10, ty]], [0]), g, size)) == 0


def test_resample_brings_a_result_to_another_grid():
    mask = np.array([[0, 1], [2, 3]], np.uint8)
    assert resample(mask, (2, 2), (4, 4)).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert resample(mask, (2, 2), (2, 2)) is mask
    np.testing.assert_allclose(resample(Boxes([[1, 2, 3, 4]], [0]), (10, 10), (20, 5)).xyxy, [[2, 1, 6, 2]])
    with pytest.raises(ValueError, match="0x5"):
        resample(mask, (0, 5), (4, 4))  # a hostile Detection2DArray's image_width


def test_a_received_result_is_brought_onto_its_frame_by_the_grid_it_names():
    spec = InputSpec(width=32, height=32, resize_mode="center_crop")
    mask = (np.arange(32 * 32, dtype=np.uint8).reshape(32, 32) // 37) % 5
    # On the model's grid (dense_grid model): the crop undone, the cut-off sides unlabelled.
    np.testing.assert_array_equal(to_frame(mask, (32, 32), (64, 48), spec), to_source(mask, geometry(64, 48, spec),
                                                                                       (64, 48)))
    # On the camera's grid at dense_scale 0.5: resampled only.
    half = to_source(mask, geometry(64, 48, spec), (64, 48), 0.5)
    np.testing.assert_array_equal(to_frame(half, (32, 24), (64, 48), spec), resample(half, (32, 24), (64, 48)))
