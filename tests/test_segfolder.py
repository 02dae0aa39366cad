"""Segmentation folders: both split layouts, the classes file, subsets, and every bad-data case."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archbench.data.seg_sources import open_segmentation_data, open_segmentation_val
from archbench.errors import UserError

from helpers import SEG_CLASSES, make_segfolder, run_cli


def open_folder(root: Path, **kw):
    return open_segmentation_data(f"segfolder:{root}", resolution=32, cache_root=root.parent, **kw)


def test_folder_layout_serves_images_masks_and_classes(tmp_path):
    root = make_segfolder(tmp_path / "d", size=(40, 24))
    train, val, info = open_folder(root)
    assert (info["n_train"], info["n_val"], info["num_classes"]) == (8, 4, 3)
    assert info["class_names"] == list(SEG_CLASSES) and info["ignore_index"] == 255
    on_disk = np.asarray(Image.open(root / "masks" / "val" / "val_000.png"))
    assert np.array_equal(val.label_map(0).numpy(), on_disk)  # evaluation sees the file, unresized
    image, labels, meta = val[0]
    assert image.shape == (3, 32, 32) and labels.shape == (32, 32) and meta["orig_size"] == (24, 40)
    assert set(labels[19:, :].unique().tolist()) == {255}  # letterbox padding (rows 19..31) is ignored
    stats = train.stats
    assert sum(stats["pixels"].values()) + stats["ignored_pixels"] == 8 * 40 * 24
    assert stats["ignored_pixels"] == 8 * 9  # the 3x3 ignore patch of each image


def test_the_validation_split_opens_alone_without_reading_the_train_split(tmp_path):
    root = make_segfolder(tmp_path / "d")
    _, whole, _ = open_folder(root)
    for split_folder in (root / "images" / "train", root / "masks" / "train"):
        for path in split_folder.iterdir():
            path.write_bytes(b"not a png")  # opening the train split would now fail
    val, info = open_segmentation_val(f"segfolder:{root}", resolution=32, cache_root=tmp_path)
    assert not val.train and val.fingerprint == whole.fingerprint
    assert info == {
        "name": f"segfolder:{root}",
        "n_val": 4,
        "num_classes": 3,
        "class_names": list(SEG_CLASSES),
        "ignore_index": 255,
        "stats": {"val": whole.stats},
    }
    with pytest.raises(UserError, match="train_000"):
        open_folder(root)


def test_list_layout_and_subset(tmp_path):
    root = make_segfolder(tmp_path / "d", layout="lists")
    (root / "val.txt").write_text("# the validation images\nval_000.png\n\nval_001\n")  # extension optional
    train, val, info = open_folder(root, subset=3)
    assert (info["n_train"], info["n_val"]) == (3, 2)
    _, _, again = open_folder(root, subset=3)
    _, _, full = open_folder(root)
    assert again["fingerprint"] == info["fingerprint"] != full["fingerprint"]


def test_ignore_index_comes_from_the_classes_file(tmp_path):
    root = make_segfolder(tmp_path / "d")
    (root / "classes.yaml").write_text('{"names": ["bg", "a", "b", "c"], "ignore_index": 200}')
    with pytest.raises(UserError, match=r"unknown class index\(es\) \[255\]"):  # 255 is now an unknown index
        open_folder(root)
    (root / "classes.yaml").write_text("names: [bg, a, b]\nignore_index: 255\n")
    assert open_folder(root)[2]["class_names"] == ["bg", "a", "b"]


def _rewrite_mask(root: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path = root / "masks" / "train" / "train_002.png"
    Image.fromarray(array, mode=mode).save(path)
    return path


def _bad_size(root):
    return _rewrite_mask(root, np.zeros((31, 32), np.uint8)), r"mask is 32x31 px but its image .* 32x32 px"


def _bad_index(root):
    mask = np.zeros((32, 32), np.uint8)
    mask[5, 5], mask[6, 6] = 7, 3
    return _rewrite_mask(root, mask), r"unknown class index\(es\) \[3, 7\].* 0\.\.2 and the ignore index is 255"


def _rgb_mask(root):
    return _rewrite_mask(root, np.zeros((32, 32, 3), np.uint8)), r"single-channel class-index PNG .* mode RGB"


def _unreadable_mask(root):
    path = root / "masks" / "train" / "train_002.png"
    path.write_bytes(b"not a png")
    return path, r"not a readable mask image"


def _unreadable_image(root):
    path = root / "images" / "train" / "train_002.png"
    path.write_bytes(b"\x89PNG broken")
    return path, r"not a readable image"


def _missing_mask(root):
    path = root / "images" / "train" / "train_002.png"
    (root / "masks" / "train" / "train_002.png").unlink()
    return path, r"no mask .*train_002\.png"


def _missing_classes(root):
    (root / "classes.yaml").unlink()
    return root, r"no classes file"


def _duplicate_class(root):
    (root / "classes.yaml").write_text("[bg, a, a]\n")
    return root / "classes.yaml", r"duplicate class name\(s\) 'a'"


def _ignore_is_a_class(root):
    (root / "classes.yaml").write_text("names: [bg, a, b]\nignore_index: 1\n")
    return root / "classes.yaml", r"'ignore_index' must be an integer outside the class indices 0\.\.2"


def _unknown_key(root):
    (root / "classes.yaml").write_text("names: [bg, a, b]\npalette: []\n")
    return root / "classes.yaml", r"unknown key\(s\) palette"


def _missing_split(root):
    for path in (root / "images" / "val").iterdir():
        path.unlink()
    (root / "images" / "val").rmdir()
    return root, r"no 'val' split; accepted layouts"


@pytest.mark.parametrize(
    "break_it",
    [
        _bad_size,
        _bad_index,
        _rgb_mask,
        _unreadable_mask,
        _unreadable_image,
        _missing_mask,
        _missing_classes,
        _duplicate_class,
        _ignore_is_a_class,
        _unknown_key,
        _missing_split,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_folder_is_refused_naming_the_file(tmp_path, break_it):
    root = make_segfolder(tmp_path / "d")
    named, rule = break_it(root)
    with pytest.raises(UserError) as err:
        open_folder(root)
    assert str(named) in err.value.message and re.search(rule, err.value.message), err.value.message


def test_list_file_naming_a_missing_image(tmp_path):
    root = make_segfolder(tmp_path / "d", layout="lists")
    (root / "train.txt").write_text("train_000\nnope\n")
    with pytest.raises(UserError, match=r"train\.txt, line 2: no image 'nope'"):
        open_folder(root)


def test_cli_reports_bad_segfolder_without_traceback(tmp_path):
    root = make_segfolder(tmp_path / "d")
    _bad_index(root)
    res = run_cli("run", "--task", "seg", "--data", f"segfolder:{root}", "--results", str(tmp_path / "r"))
    assert res.returncode == 2 and "unknown class index" in res.stderr and "Traceback" not in res.stderr
    bad_task = run_cli("run", "--task", "depth", "--results", str(tmp_path / "r"))
    assert bad_task.returncode == 2 and "choose one of det, seg" in bad_task.stderr
    det_on_seg = run_cli("run", "--data", f"segfolder:{root}", "--results", str(tmp_path / "r"))
    assert det_on_seg.returncode == 2 and "unknown data reference" in det_on_seg.stderr
    picked = run_cli(
        "run", "--task", "seg", "--data", f"segfolder:{root}", "--categories", "a", "--results", str(tmp_path / "r")
    )
    assert picked.returncode == 2 and "only coco:PATH data can select categories" in picked.stderr
