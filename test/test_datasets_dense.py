"""Dense data: the procedural scenes' labels agree with each other and with the geometry, and
the own-data loader reads masks, depth and COCO annotations in the CSV layout."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from mtl_split_training.datasets import DataOptions, open_data
from mtl_split_training.datasets.base import IGNORE
from mtl_split_training.datasets.scenes_geometry import CAPSULE, CYLINDER, SPHERE, Primitive
from mtl_split_training.datasets.scenes_render import FLOOR, MIN_AREA_FRACTION, MIN_VISIBLE, WALL
from mtl_split_training.errors import TrainingError

pytestmark = pytest.mark.training
DENSE = ("segmentation", "depth", "detection")


def _scenes(size: int = 64, **kw):
    return open_data("scenes", DataOptions(**{"size": size, "train_size": 24, "val_size": 4, "test_size": 8, **kw}))


def _sdf(obj: Primitive, p: np.ndarray) -> np.ndarray:
    """Signed distance of world points to the object's surface (written independently of the
    ray casting, from the shape's definition)."""
    x, y, z = p[:, 0] - obj.x, p[:, 1], p[:, 2] - obj.z
    r, h = obj.radius, obj.height
    if obj.shape == SPHERE:
        return np.sqrt(x ** 2 + (y - r) ** 2 + z ** 2) - r
    if obj.shape == CAPSULE:
        yc = np.clip(y, r, h - r)
        return np.sqrt(x ** 2 + (y - yc) ** 2 + z ** 2) - r
    if obj.shape == CYLINDER:
        return np.maximum(np.sqrt(x ** 2 + z ** 2) - r, np.abs(y - h / 2) - h / 2)
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    lx, lz = c * x - s * z, s * x + c * z  # into the box's frame
    return np.maximum.reduce([np.abs(lx) - r, np.abs(y - h / 2) - h / 2, np.abs(lz) - r])


def test_scenes_are_deterministic_any_size_and_offer_every_task():
    a, b = _scenes(), _scenes()
    image, labels = a.split("train").sample(5)
    np.testing.assert_array_equal(image, b.split("train").image(5))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert {t.name: t.kind for t in a.tasks if t.dense} == dict(zip(DENSE, DENSE))
    assert labels["segmentation"].shape == (64, 64) and labels["segmentation"].dtype == np.uint8
    assert labels["depth"].dtype == np.float32 and labels["depth"].min() > 0.5
    assert not np.array_equal(image, open_data("scenes", DataOptions(size=64, seed=1)).split("train").image(5))
    for size in (40, 96):
        frame = _scenes(size).split("train").frame(5)
        assert frame.image.shape == (size, size, 3) and frame.depth.shape == (size, size)
        assert [int(c) for c in frame.box_classes] == [int(c) for c in _scenes().split("train").frame(5).box_classes]


def test_test_split_depends_only_on_the_seed():
    small = _scenes(train_size=2).split("test")
    large = _scenes(train_size=500).split("test")
    np.testing.assert_array_equal(small.image(3), large.image(3))


@pytest.mark.parametrize("index", range(12))
def test_masks_boxes_and_factors_agree(index):
    split = _scenes(tasks=("count", "shape", "object_hue", "scale", *DENSE)).split("train")
    frame, labels = split.frame(index), split.labels(index)
    objects = frame.scene.objects
    assert 1 <= len(objects) <= 6 and len(frame.boxes) == len(objects) == labels["count"] + 1
    boxes = labels["detection"]
    for k, obj in enumerate(objects):
        ys, xs = np.nonzero(frame.instance == k + 1)
        # The box is the tight box of the object's visible pixels, and names its shape.
        np.testing.assert_array_equal(boxes.xyxy[k], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert boxes.classes[k] == obj.shape
        assert (frame.semantic[ys, xs] == 2 + obj.shape).all()
        x0, y0, x1, y1 = boxes.xyxy[k].astype(int)
        assert (frame.semantic[y0:y1, x0:x1] == 2 + obj.shape).any()
        assert len(ys) >= MIN_AREA_FRACTION * 64 * 64
    # Every object pixel belongs to an object; floor and wall are the rest.
    assert ((frame.semantic >= 2) == (frame.instance > 0)).all()
    assert set(np.unique(frame.semantic[frame.instance == 0])) <= {FLOOR, WALL}
    main = min(range(len(objects)), key=lambda k: math.hypot(objects[k].x, objects[k].z))
    assert labels["shape"] == objects[main].shape and labels["object_hue"] == frame.scene.hues[main]


@pytest.mark.parametrize("index", range(8))
def test_depth_is_the_scene_geometry(index):
    frame = _scenes().split("test").frame(index)
    camera = frame.scene.camera(64)
    v, u = np.mgrid[0:64, 0:64] + 0.5
    points = camera.unproject(u, v, frame.depth.astype(np.float64))
    floor, wall = frame.semantic == FLOOR, frame.semantic == WALL
    np.testing.assert_allclose(points[floor][:, 1], 0.0, atol=2e-3)  # on the floor plane
    np.testing.assert_allclose(points[wall][:, 2], frame.scene.wall_distance, atol=2e-3)
    for k, obj in enumerate(frame.scene.objects):
        on = points[frame.instance == k + 1]
        np.testing.assert_allclose(_sdf(obj, on), 0.0, atol=2e-3)  # on the object's surface
        # Nothing of any object sticks out in front of what the depth map shows.
        assert (_sdf(obj, points.reshape(-1, 3)) > -2e-3).all()


def test_visibility_rule_and_occlusion_happens():
    split = _scenes(size=96, train_size=60).split("train")
    occluded = 0
    for i in range(60):
        frame = split.frame(i)
        for k, obj in enumerate(frame.scene.objects):
            visible = int((frame.instance == k + 1).sum())
            alone = int(np.isfinite(obj.intersect(frame.scene.camera(96).origin,
                                                  split.renderer.rays(frame.scene.camera(96), frame.scene.orientation)
                                                  .reshape(-1, 3))[0]).sum())
            assert visible >= MIN_VISIBLE * alone - 1
            occluded += visible < alone
    assert occluded > 5, "scenes should show partly hidden objects"


def test_ood_split_holds_out_floor_and_wall_hues():
    src = _scenes(ood_hues=(8, 9), tasks=("shape", "detection"))
    for i in range(8):
        s = src.split("test").frame(i).scene
        assert {s.floor_hue, s.wall_hue} & {8, 9}
        t = src.split("train").frame(i).scene
        assert not {t.floor_hue, t.wall_hue} & {8, 9}
    with pytest.raises(TrainingError, match="cannot be a task"):
        _scenes(ood_hues=(8,), tasks=("floor_hue",))


# --- your own dense data --------------------------------------------------------------------

def _own_data(tmp_path, rows_extra=None):
    """Three 40x30 images with a mask PNG, depth (PNG mm or NPY m) and one COCO file."""
    rng = np.random.default_rng(0)
    images, anns = [], []
    rows = ["image,mask,depth,coco,weather,split"]
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
        mask = np.zeros((30, 40), np.uint8)
        mask[5:15, 10:20] = 2
        mask[0, 0] = IGNORE
        cv2.imwrite(str(tmp_path / f"m{i}.png"), mask)
        if i == 0:
            np.save(tmp_path / "d0.npy", np.full((30, 40), 2.5, np.float32))
            depth = "d0.npy"
        else:
            cv2.imwrite(str(tmp_path / f"d{i}.png"), np.full((30, 40), 1500 * i, np.uint16))
            depth = f"d{i}.png"
        images.append({"id": 10 + i, "file_name": f"images/im{i}.png", "width": 40, "height": 30})
        anns.append({"id": 100 + i, "image_id": 10 + i, "category_id": 7, "bbox": [10, 5, 10, 10], "area": 100,
                     "iscrowd": 0, "segmentation": [[10, 5, 20, 5, 20, 15, 10, 15]]})
        rows.append(f"im{i}.png,m{i}.png,{depth},ann.json,{'sun' if i else 'rain'},{('train', 'train', 'test')[i]}")
    anns.append({"id": 200, "image_id": 10, "category_id": 3, "bbox": [30, 20, 4, 6], "area": 24, "iscrowd": 0,
                 "segmentation": {"size": [30, 40], "counts": [30 * 30 + 20, 6, 24, 6, 24, 6, 24, 6, 184]}})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": 3, "name": "cup"}, {"id": 7, "name": "box"}]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    (tmp_path / "data.csv").write_text("\n".join(rows + (rows_extra or [])) + "\n")
    return tmp_path / "data.csv"


def test_own_dense_data_in_the_csv_layout(tmp_path):
    csv = _own_data(tmp_path)
    src = open_data(f"csv:{csv}", DataOptions(size=20))
    assert {t.name: t.kind for t in src.tasks} == {"weather": "classification", **dict(zip(DENSE, DENSE))}
    seg = next(t for t in src.tasks if t.name == "segmentation")
    assert seg.classes == ("background", "cup", "box")  # mask ids follow the COCO categories
    assert next(t for t in src.tasks if t.name == "detection").classes == ("cup", "box")
    image, labels = src.split("train").sample(0)
    assert image.shape == (20, 20, 3)
    mask = labels["segmentation"]
    source = cv2.imread(str(tmp_path / "m0.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, cv2.resize(source, (20, 20), interpolation=cv2.INTER_NEAREST))
    assert mask[0, 0] == IGNORE and (mask == 2).any()
    np.testing.assert_allclose(labels["depth"], 2.5)
    box = labels["detection"]
    np.testing.assert_allclose(box.xyxy, [[5, 10 / 3, 10, 10], [15, 40 / 3, 17, 52 / 3]], rtol=1e-5)
    assert box.classes.tolist() == [1, 0]
    np.testing.assert_allclose(src.split("train").labels(1)["depth"], 1.5)  # 1500 mm


def test_own_data_segmentation_from_coco_instance_masks(tmp_path):
    csv = _own_data(tmp_path)
    text = csv.read_text().replace("image,mask,depth", "image,unused_mask,depth")
    csv.write_text(text)
    src = open_data(f"csv:{csv}", DataOptions(size=40, tasks=("segmentation", "detection")))
    labels = src.split("train").labels(0)
    mask = cv2.resize(labels["segmentation"], (40, 30), interpolation=cv2.INTER_NEAREST)
    assert (mask == 2).sum() > 0 and (mask == 1).sum() > 0  # polygon "box" and RLE "cup"
    assert set(np.unique(mask)) <= {0, 1, 2}


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "m1.png").unlink(), "mask file"),
    (lambda d: cv2.imwrite(str(d / "m1.png"), np.zeros((10, 10), np.uint8)), "must have the image's size"),
    (lambda d: (d / "ann.json").write_text(json.dumps({"images": [], "annotations": [],
                                                       "categories": [{"id": 1, "name": "x"}]})), "no image with"),
    (lambda d: cv2.imwrite(str(d / "d1.png"), np.zeros((30, 40), np.uint8)), "16-bit"),
])
def test_own_data_errors_are_one_clear_line(tmp_path, breakage, message):
    csv = _own_data(tmp_path)
    breakage(tmp_path)
    with pytest.raises(TrainingError, match=message):
        src = open_data(f"csv:{csv}", DataOptions(size=20))
        for i in range(2):
            src.split("train").sample(i)


def test_bags_carry_masks_depth_and_boxes(tmp_path):
    from mtl_split_tools.bag_reading import read_frames
    from mtl_split_tools.bags import write_bag

    src = _scenes(48, tasks=("shape", *DENSE))
    split, split_tasks = src.split("test"), {t.name: t for t in src.tasks}
    write_bag(tmp_path / "bag", (split.sample(i) for i in range(4)), {t.name: list(t.classes) for t in src.tasks}, 30.0)
    frames = read_frames(tmp_path / "bag").frames
    assert len(frames) == 4 and all(f.topic == "/camera/image_raw" for f in frames)  # labels are not cameras
    for i, f in enumerate(frames):
        truth = split.labels(i)
        assert f.labels["shape"] == split_tasks["shape"].classes[truth["shape"]]  # by name
        np.testing.assert_array_equal(f.labels["segmentation"], truth["segmentation"])
        np.testing.assert_array_equal(f.labels["depth"], truth["depth"])
        np.testing.assert_array_equal(f.labels["detection"].xyxy, truth["detection"].xyxy)
        np.testing.assert_array_equal(f.labels["detection"].classes, truth["detection"].classes)
