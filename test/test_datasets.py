"""Datasets: procedural scenes, a real-layout 3dshapes.h5, and CSV/TSV labelled folders."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from mtl_split_core.dense import Boxes
from mtl_split_training.datasets import DATASETS, DataOptions, iter_labelled_images, open_data
from mtl_split_training.datasets.shapes_factors import FACTOR_SIZES, FACTORS, NUM_COMBINATIONS
from mtl_split_training.datasets.shapes_render import renderer
from mtl_split_training.errors import TrainingError

pytestmark = pytest.mark.training
SMALL = DataOptions(size=32, train_size=50, val_size=20, test_size=20)


def _opts(**kw) -> DataOptions:
    return DataOptions(**{**SMALL.__dict__, **kw})


def test_shapes_images_are_uint8_rgb_and_deterministic():
    a = open_data("shapes", _opts(tasks=("shape", "scale")))
    b = open_data("shapes", _opts(tasks=("shape", "scale")))
    image, labels = a.split("train").sample(3)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert set(labels) == {"shape", "scale"}
    np.testing.assert_array_equal(image, b.split("train").image(3))
    assert [t.name for t in a.tasks] == ["shape", "scale"]
    assert a.tasks[0].classes == ("cube", "cylinder", "sphere", "capsule")
    other_seed = open_data("shapes", _opts(seed=1)).split("train")
    assert not np.array_equal(image, other_seed.image(3))


def test_shapes_motion_sees_continuous_poses_labelled_by_the_nearest_angle():
    """What the video clips show: any camera angle in range, the object off centre."""
    still, moving = open_data("shapes", SMALL), open_data("shapes_motion", SMALL)
    orient = [f.name for f in FACTORS].index("orientation")
    angles = np.asarray(FACTORS[orient].values)
    for name in ("train", "val", "test"):
        a, b = still.split(name), moving.split(name)
        assert b.poses.shape == (len(b), 2)
        other = np.delete(np.arange(a.combinations.shape[1]), orient)
        np.testing.assert_array_equal(a.combinations[:, other], b.combinations[:, other])  # same scenes
        nearest = np.abs(b.poses[:, :1] - angles[None, :]).argmin(axis=1)
        np.testing.assert_array_equal(b.combinations[:, orient], nearest)
        assert b.labels(0)["orientation"] == nearest[0]
    train = moving.split("train")
    assert len({round(float(v), 3) for v in train.poses[:, 0]}) == len(train)  # not 15 angles: continuous
    assert not np.array_equal(train.image(0), still.split("train").image(0))
    np.testing.assert_array_equal(train.image(0), open_data("shapes_motion", SMALL).split("train").image(0))


def test_shapes_splits_are_disjoint_and_sized():
    src = open_data("shapes", SMALL)
    combos = {name: {tuple(r) for r in src.split(name).combinations} for name in ("train", "val", "test")}
    assert [len(combos[n]) for n in ("train", "val", "test")] == [50, 20, 20]
    assert not (combos["train"] & combos["val"] or combos["train"] & combos["test"] or combos["val"] & combos["test"])
    assert NUM_COMBINATIONS == 480000 and FACTOR_SIZES == (10, 10, 10, 8, 4, 15)


def test_test_split_does_not_depend_on_train_size():
    small = open_data("shapes", _opts(train_size=10)).split("test").combinations
    large = open_data("shapes", _opts(train_size=5000)).split("test").combinations
    np.testing.assert_array_equal(small, large)
    train = {tuple(r) for r in open_data("shapes", _opts(train_size=5000)).split("train").combinations}
    assert not train & {tuple(r) for r in small}


def test_every_factor_changes_the_image():
    r = renderer(64)
    base = (1, 2, 3, 4, 0, 7)
    for i, size in enumerate(FACTOR_SIZES):
        changed = list(base)
        changed[i] = (base[i] + 1) % size
        diff = np.abs(r.render(base).astype(int) - r.render(changed).astype(int)).sum()
        assert diff > 0, f"factor {FACTORS[i].name} does not change the image"


def test_rendering_is_fast_at_64_and_works_at_224():
    r = renderer(64)
    combos = np.stack([np.arange(500) % n for n in FACTOR_SIZES], axis=1)
    start = time.perf_counter()
    for c in combos:
        r.render(c)
    assert 500 / (time.perf_counter() - start) > 1000  # frames per second on one core
    big = renderer(224).render((0, 5, 2, 7, 3, 14))
    assert big.shape == (224, 224, 3) and big.dtype == np.uint8


def test_ood_split_holds_out_floor_and_wall_hues():
    src = open_data("shapes", _opts(ood_hues=(8, 9), tasks=("shape",)))
    for name in ("train", "val"):
        assert not np.isin(src.split(name).combinations[:, :2], [8, 9]).any()
    assert np.isin(src.split("test").combinations[:, :2], [8, 9]).any(axis=1).all()
    with pytest.raises(TrainingError, match="floor_hue"):
        open_data("shapes", _opts(ood_hues=(9,), tasks=("floor_hue",)))


def test_test_salt_pepper_noise_is_fixed_per_index():
    clean = open_data("shapes", SMALL).split("test").image(0)
    noisy = open_data("shapes", _opts(test_salt_pepper=0.2))
    a, b = noisy.split("test").image(0), noisy.split("test").image(0)
    np.testing.assert_array_equal(a, b)
    flipped = (a != clean).any(axis=2).mean()
    assert 0.1 < flipped < 0.3
    assert set(np.unique(a[(a != clean).any(axis=2)])) <= {0, 255}


def test_bad_spec_and_tasks_are_clear_errors():
    with pytest.raises(TrainingError, match="unknown dataset"):
        open_data("imagenet", SMALL)
    with pytest.raises(TrainingError, match="unknown task"):
        open_data("shapes", _opts(tasks=("colour",)))
    with pytest.raises(TrainingError, match="lower the split sizes"):
        open_data("shapes", _opts(train_size=NUM_COMBINATIONS))


def test_iter_labelled_images_for_bag_writing():
    samples = list(iter_labelled_images("shapes", size=48, split="test", tasks=("shape",), limit=5))
    assert len(samples) == 5
    assert all(img.shape == (48, 48, 3) and set(lab) == {"shape"} for img, lab in samples)


def test_torch_dataset_normalizes_with_the_manifest_stats():
    torch = pytest.importorskip("torch")
    from mtl_split_core.bundle import InputSpec
    from mtl_split_training.datasets.torch_dataset import TorchImages

    source = open_data("shapes", _opts(tasks=("shape",)))
    split = source.split("train")
    spec = InputSpec(width=32, height=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x, labels = TorchImages(split, spec)[0]
    expected = (torch.from_numpy(split.image(0)).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(x, expected)
    assert labels == split.labels(0)
    noisy = TorchImages(split, spec, salt_pepper=0.1)
    first = noisy[0][0]
    noisy.set_epoch(1)
    assert not torch.equal(first, noisy[0][0])


# --- DeepMind 3dshapes.h5 layout ----------------------------------------------------------

def _write_h5(path, n=40, seed=0):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(seed)
    classes = np.stack([rng.integers(0, s, n) for s in FACTOR_SIZES], axis=1)
    labels = np.stack([np.asarray(f.values)[classes[:, i]] for i, f in enumerate(FACTORS)], axis=1)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels.astype(np.float64))
    return images, classes


def test_h5_loader_maps_float_labels_to_classes(tmp_path):
    images, classes = _write_h5(tmp_path / "3dshapes.h5")
    src = open_data(f"h5:{tmp_path / '3dshapes.h5'}", DataOptions(size=64, tasks=("scale", "orientation"), seed=1))
    seen = 0
    for name in ("train", "val", "test"):
        split = src.split(name)
        for i in range(len(split)):
            row = split.rows[i]
            image, labels = split.sample(i)
            np.testing.assert_array_equal(image, images[row])
            assert labels == {"scale": classes[row, 3], "orientation": classes[row, 5]}
            seen += 1
    assert seen == 40
    assert open_data(f"h5:{tmp_path / '3dshapes.h5'}", DataOptions(size=32)).split("train").image(0).shape == (32, 32, 3)


def test_h5_errors(tmp_path):
    h5py = pytest.importorskip("h5py")
    with pytest.raises(TrainingError, match="no such file"):
        open_data(f"h5:{tmp_path / 'none.h5'}")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_dataset("images", data=np.zeros((2, 8, 8, 3), np.uint8))
        f.create_dataset("labels", data=np.full((2, 6), 7.5))
    with pytest.raises(TrainingError, match="off the 3dshapes grid"):
        open_data(f"h5:{tmp_path / 'bad.h5'}")


# --- CSV / TSV labelled folders -------------------------------------------------------------

def _write_folder(root, delimiter=",", split=True, n=12):
    (root / "img").mkdir(parents=True)
    header = ["image", "damage", "level"] + (["split"] if split else [])
    lines = [delimiter.join(header)]
    for i in range(n):
        colour = (i * 20 % 256, 100, 200)
        cv2.imwrite(str(root / "img" / f"{i}.png"), np.full((20, 30, 3), colour, np.uint8))
        row = [f"img/{i}.png", ["none", "mild", "severe"][i % 3], str([2, 10, 1][i % 3])]
        if split:
            row.append(["train", "train", "dev", "test"][i % 4])
        lines.append(delimiter.join(row))
    name = "labels.tsv" if delimiter == "\t" else "labels.csv"
    (root / name).write_text("\n".join(lines) + "\n")
    return root / name


def test_csv_folder_with_split_column(tmp_path):
    path = _write_folder(tmp_path)
    src = open_data(f"csv:{path}", DataOptions(size=24))
    assert [t.name for t in src.tasks] == ["damage", "level"]
    assert src.tasks[0].classes == ("mild", "none", "severe")
    assert src.tasks[1].classes == ("1", "2", "10")  # integers sort numerically
    assert [len(src.split(s)) for s in ("train", "val", "test")] == [6, 3, 3]
    image, labels = src.split("train").sample(0)
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (200, 100, 0)  # RGB, not OpenCV's BGR
    assert labels == {"damage": 1, "level": 1}


def test_tsv_is_sniffed_and_split_is_seeded(tmp_path):
    path = _write_folder(tmp_path, delimiter="\t", split=False, n=20)
    opts = DataOptions(size=16, tasks=("level",), val_fraction=0.2, test_fraction=0.2, seed=3)
    a, b = open_data(f"csv:{path}", opts), open_data(f"csv:{path}", opts)
    assert [len(a.split(s)) for s in ("train", "val", "test")] == [12, 4, 4]
    assert a.split("test").paths == b.split("test").paths
    assert [t.name for t in a.tasks] == ["level"]


def test_csv_errors_are_clear(tmp_path):
    path = _write_folder(tmp_path)
    with pytest.raises(TrainingError, match="no column for task"):
        open_data(f"csv:{path}", DataOptions(tasks=("age",)))
    (tmp_path / "noimage.csv").write_text("file,damage\nimg/0.png,none\n")
    with pytest.raises(TrainingError, match="no 'image' column"):
        open_data(f"csv:{tmp_path / 'noimage.csv'}")
    (tmp_path / "missing.csv").write_text("image,damage\nimg/0.png,none\nimg/404.png,mild\n")
    with pytest.raises(TrainingError, match="1 image file"):
        open_data(f"csv:{tmp_path / 'missing.csv'}")
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "broken.csv").write_text("image,damage\nimg/broken.png,none\n")
    src = open_data(f"csv:{tmp_path / 'broken.csv'}", DataOptions(val_fraction=0, test_fraction=0))
    with pytest.raises(TrainingError, match="not a readable image"):
        src.split("train").image(0)


# --- every registered dataset keeps the contract ---------------------------------------------

def _example_spec(kind: str, tmp_path) -> str:
    """A tiny spec of each registered kind; a new kind adds its example here."""
    if kind in ("shapes", "shapes_motion", "scenes"):
        return kind
    if kind == "h5":
        _write_h5(tmp_path / "3dshapes.h5")
        return f"h5:{tmp_path / '3dshapes.h5'}"
    if kind == "csv":
        return f"csv:{_write_folder(tmp_path, split=False, n=20)}"
    pytest.fail(f"dataset {kind!r} is registered but test_datasets has no example spec for it")


@pytest.mark.parametrize("kind", DATASETS.names())
def test_every_registered_dataset_gives_labelled_rgb_images(kind, tmp_path):
    source = open_data(_example_spec(kind, tmp_path), _opts(train_size=6, val_size=3, test_size=3))
    assert source.tasks
    for name in ("train", "val", "test"):
        split = source.split(name)
        assert len(split) > 0
        image, labels = split.sample(len(split) - 1)
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert set(labels) == {t.name for t in source.tasks}
        for task in source.tasks:
            label = labels[task.name]
            if task.kind == "classification":
                assert 0 <= int(label) < task.num_classes
            elif task.kind == "detection":
                assert isinstance(label, Boxes)
            else:
                assert label.shape == (32, 32)
