"""The built-in generated COCO-format data set: determinism, COCO validity, content, caching, CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from typer.testing import CliRunner

from archbench.cli.data import app
from archbench.data import synthetic
from archbench.data.synthetic.staging import tmp_name
from archbench.errors import UserError

# pycocotools' decode trips numpy 2's __array__(copy=...) deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

TINY = {"n_train": 8, "n_val": 4, "size": 96}
K = len(synthetic.CLASSES)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> synthetic.SyntheticInfo:
    return synthetic.generate(tmp_path_factory.mktemp("tiny") / "ds", seed=0, **TINY)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> synthetic.SyntheticInfo:
    """64 training images at 128 px: enough objects for distribution checks."""
    return synthetic.generate(
        tmp_path_factory.mktemp("medium") / "ds", seed=0, n_train=64, n_val=0, size=128, workers=1
    )


def _coco(info: synthetic.SyntheticInfo, split: str) -> COCO:
    return COCO(str(info.path / "annotations" / f"instances_{split}.json"))


def _contiguous(coco: COCO) -> dict[int, int]:
    """COCO category id -> semantic-mask value (1..K), in the order of the categories list."""
    return {cat["id"]: k + 1 for k, cat in enumerate(coco.dataset["categories"])}


# ------------------------------------------------------------------ layout and determinism


def test_layout_and_metadata(tiny: synthetic.SyntheticInfo) -> None:
    root = tiny.path
    for split, count in (("train", 8), ("val", 4)):
        assert sorted(p.name for p in (root / "images" / split).iterdir()) == [f"{i:06d}.png" for i in range(count)]
        assert sorted(p.name for p in (root / "masks" / split).iterdir()) == [f"{i:06d}.png" for i in range(count)]
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["name"] == "synthetic" and meta["seed"] == 0 and meta["size"] == 96
    assert (meta["n_train"], meta["n_val"]) == (8, 4)
    assert meta["generator_version"] == synthetic.GENERATOR_VERSION
    assert meta["classes"] == tiny.classes == [c.name for c in synthetic.CLASSES]
    assert meta["fingerprint"] == tiny.fingerprint == synthetic.fingerprint(root)
    assert len(tiny.fingerprint) == 64 and int(tiny.fingerprint, 16) >= 0
    assert not list(root.parent.glob("*.tmp-*")), "the staging folder must be gone"
    image = Image.open(root / "images" / "train" / "000000.png")
    assert image.mode == "RGB" and image.size == (96, 96)
    assert Image.open(root / "masks" / "train" / "000000.png").mode == "L"


def test_same_seed_same_bytes_other_seed_differs(tiny: synthetic.SyntheticInfo, tmp_path: Path) -> None:
    again = synthetic.generate(tmp_path / "again", seed=0, **TINY)
    assert again.fingerprint == tiny.fingerprint
    other = synthetic.generate(tmp_path / "other", seed=1, **TINY)
    assert other.fingerprint != tiny.fingerprint


def test_output_does_not_depend_on_worker_count(tmp_path: Path) -> None:
    args = {"seed": 3, "n_train": 40, "n_val": 0, "size": 64}
    heard: list[tuple[int, int]] = []
    one = synthetic.generate(
        tmp_path / "one", workers=1, progress=lambda done, total: heard.append((done, total)), **args
    )
    two = synthetic.generate(tmp_path / "two", workers=2, **args)
    assert one.fingerprint == two.fingerprint
    assert heard == [(0, 40), (32, 40), (40, 40)]  # at the start, then after each chunk of images


def test_fingerprint_sees_every_file(tiny: synthetic.SyntheticInfo, tmp_path: Path) -> None:
    copy = synthetic.generate(tmp_path / "copy", seed=0, **TINY)
    mask = copy.path / "masks" / "val" / "000003.png"
    mask.write_bytes(mask.read_bytes() + b"\0")
    assert synthetic.fingerprint(copy.path) != tiny.fingerprint


# ------------------------------------------------------------------ COCO validity


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_annotations_are_valid_and_tight(tiny: synthetic.SyntheticInfo, split: str) -> None:
    coco = _coco(tiny, split)
    assert len(coco.getImgIds()) == (8 if split == "train" else 4)
    assert len(coco.getAnnIds()) > 0
    ids = [a["id"] for a in coco.dataset["annotations"]]
    assert len(set(ids)) == len(ids)
    for ann in coco.dataset["annotations"]:
        img = coco.imgs[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert all(isinstance(v, float) for v in ann["bbox"])
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= img["width"] and y + h <= img["height"]
        mask = coco.annToMask(ann).astype(bool)
        assert mask.sum() == ann["area"] > 0, "area is the visible pixel count"
        ys, xs = np.nonzero(mask)
        assert [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()] == [x, y, w, h], "bbox is tight"
        assert ann["iscrowd"] in (0, 1)
        if ann["iscrowd"]:
            assert isinstance(ann["segmentation"], dict) and isinstance(ann["segmentation"]["counts"], str)
        else:
            assert isinstance(ann["segmentation"], list)
            assert all(len(poly) >= 6 and len(poly) % 2 == 0 for poly in ann["segmentation"])


def test_category_ids_are_non_contiguous(tiny: synthetic.SyntheticInfo) -> None:
    cats = _coco(tiny, "train").dataset["categories"]
    ids = [c["id"] for c in cats]
    assert len(ids) == K and len(set(ids)) == K
    assert ids != list(range(1, K + 1)) and max(ids) > K
    assert all({"id", "name", "supercategory"} <= set(c) for c in cats)


def test_semantic_masks_match_instances(tiny: synthetic.SyntheticInfo) -> None:
    for split in ("train", "val"):
        coco = _coco(tiny, split)
        to_value = _contiguous(coco)
        for img in coco.dataset["images"]:
            semantic = np.asarray(Image.open(tiny.path / "masks" / split / img["file_name"]))
            assert semantic.shape == (img["height"], img["width"]) and semantic.dtype == np.uint8
            assert set(np.unique(semantic).tolist()) <= set(range(K + 1)) | {synthetic.IGNORE_INDEX}
            covered = np.zeros(semantic.shape, dtype=bool)
            for ann in coco.imgToAnns[img["id"]]:
                mask = coco.annToMask(ann).astype(bool)
                expected = synthetic.IGNORE_INDEX if ann["iscrowd"] else to_value[ann["category_id"]]
                assert (semantic[mask] == expected).all()
                assert not (covered & mask).any(), "visible parts of instances are disjoint"
                covered |= mask
                if not ann["iscrowd"]:  # the object's visible pixel nearest its centroid
                    ys, xs = np.nonzero(mask)
                    nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
                    assert semantic[ys[nearest], xs[nearest]] == expected
            assert (semantic[~covered] == 0).all(), "pixels outside every instance are background"


# ------------------------------------------------------------------ content


def test_size_buckets_are_all_well_represented(medium: synthetic.SyntheticInfo) -> None:
    coco = _coco(medium, "train")
    anns = [a for a in coco.dataset["annotations"] if not a["iscrowd"]]
    assert len(anns) >= 150
    shares = Counter(synthetic.size_bucket(a["area"], 128) for a in anns)
    for bucket in ("small", "medium", "large"):
        assert 0.15 <= shares[bucket] / len(anns) <= 0.6, (bucket, shares)
    # The smallest objects stay learnable: unoccluded extents of at least ~8 px at 128 px.
    assert np.median([min(a["bbox"][2:]) for a in anns if synthetic.size_bucket(a["area"], 128) == "small"]) >= 7
    # Several objects per image, some images with many, every class present.
    per_image = Counter(a["image_id"] for a in anns)
    assert max(per_image.values()) >= 5
    assert {a["category_id"] for a in anns} == {c.category_id for c in synthetic.CLASSES}


def test_area_thresholds_scale_with_the_image() -> None:
    assert synthetic.area_thresholds(128) == pytest.approx((12.8**2, 32.0**2))
    small, medium = synthetic.area_thresholds(256)
    assert (small, medium) == pytest.approx((4 * 12.8**2, 4 * 32.0**2))
    assert synthetic.size_bucket(100, 128) == "small"
    assert synthetic.size_bucket(500, 128) == "medium"
    assert synthetic.size_bucket(2000, 128) == "large"


def test_objects_occlude_each_other_but_stay_visible() -> None:
    """Some objects are partly hidden by later ones; every annotated one keeps >= 30% visible."""
    fractions, occluded = [], []
    for index in range(64):
        rendered = synthetic.render_image(synthetic.image_rng(0, "train", index), 128)
        assert len(rendered.visible_fraction) == len(rendered.occluded) == len(rendered.annotations)
        fractions += rendered.visible_fraction
        occluded += rendered.occluded
    assert min(fractions) >= 0.3
    assert 0.05 <= np.mean(occluded) <= 0.5
    assert np.mean(np.array(fractions) < 0.9) >= 0.05


def test_crowds_and_empty_images_occur_in_a_larger_set() -> None:
    size = 64
    crowds, empty = 0, 0
    for index in range(200):
        rendered = synthetic.render_image(synthetic.image_rng(0, "train", index), size)
        empty += not rendered.annotations
        for ann in rendered.annotations:
            if ann["iscrowd"]:
                crowds += 1
                rle = ann["segmentation"]
                mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
                assert mask.sum() == ann["area"] > 0
                assert (rendered.semantic[mask] == synthetic.IGNORE_INDEX).all()
    assert 2 <= crowds <= 30
    assert 1 <= empty <= 20


def test_images_show_the_objects(tiny: synthetic.SyntheticInfo) -> None:
    """Object pixels differ from the background around them (contrast, not only a mask)."""
    coco = _coco(tiny, "train")
    diffs = []
    for ann in coco.dataset["annotations"]:
        if ann["iscrowd"] or ann["area"] < 100:
            continue
        img = coco.imgs[ann["image_id"]]
        rgb = np.asarray(Image.open(tiny.path / "images" / "train" / img["file_name"]), dtype=np.float64)
        semantic = np.asarray(Image.open(tiny.path / "masks" / "train" / img["file_name"]))
        mask = coco.annToMask(ann).astype(bool)
        diffs.append(np.linalg.norm(rgb[mask].mean(0) - rgb[semantic == 0].mean(0)))
    assert diffs and np.median(diffs) > 30


def test_mask_to_polygons_round_trips_exactly() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40] + 0.5
    r2 = (xx - 20) ** 2 + (yy - 20) ** 2
    masks = [(r2 <= 15**2) & (r2 >= 7**2)]  # a ring: a hole COCO polygons cannot express directly
    masks += [rng.uniform(size=(12, 15)) < p for p in (0.3, 0.5, 0.7) for _ in range(30)]
    for mask in masks:
        polygons = synthetic.mask_to_polygons(mask)
        h, w = mask.shape
        back = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))).astype(bool)
        assert (back == mask).all()


# ------------------------------------------------------------------ caching and refusal


def test_ensure_synthetic_caches_and_repairs_an_interrupted_run(tmp_path: Path) -> None:
    args = {"seed": 2, "n_train": 6, "n_val": 2, "size": 64}
    path = synthetic.ensure_synthetic(tmp_path, **args)
    assert path == tmp_path / f"synthetic-s2-64px-6-2-v{synthetic.GENERATOR_VERSION}"
    original = synthetic.read_info(path).fingerprint
    stamp = (path / "dataset.json").stat().st_mtime_ns
    assert synthetic.ensure_synthetic(tmp_path, **args) == path
    assert (path / "dataset.json").stat().st_mtime_ns == stamp, "a complete data set is not regenerated"

    # An interrupted run: files missing, no dataset.json, a staging folder left behind.
    (path / "dataset.json").unlink()
    (path / "images" / "train" / "000004.png").unlink()
    stale = Path(str(tmp_name(path)).rsplit("-", 1)[0] + "-999999")  # a dead pid on this host
    stale.mkdir()
    assert synthetic.ensure_synthetic(tmp_path, **args) == path
    assert not stale.exists()
    info = synthetic.read_info(path)
    assert info.fingerprint == original == synthetic.fingerprint(path)
    assert (path / "images" / "train" / "000004.png").exists()


def test_generate_refuses_a_folder_that_is_not_a_data_set(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not an archbench synthetic data set"):
        synthetic.generate(foreign, seed=0, **TINY)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_generate_replaces_an_earlier_data_set(tmp_path: Path) -> None:
    first = synthetic.generate(tmp_path / "ds", seed=0, n_train=2, n_val=1, size=64)
    second = synthetic.generate(tmp_path / "ds", seed=1, n_train=3, n_val=1, size=64)
    assert second.fingerprint != first.fingerprint and second.n_train == 3
    assert len(list((tmp_path / "ds" / "images" / "train").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 31}, {"size": 4096}, {"n_train": -1}, {"n_val": -5}, {"seed": -1}, {"n_train": 0, "n_val": 0}],
)
def test_bad_arguments_raise_user_errors(tmp_path: Path, kwargs: dict[str, int]) -> None:
    args = {"seed": 0, **TINY, **kwargs}
    with pytest.raises(UserError):
        synthetic.generate(tmp_path / "ds", **args)
    assert not (tmp_path / "ds").exists()


# ------------------------------------------------------------------ command line


def test_cli_bad_size_exits_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "ds"), "--size", "16"])
    assert result.exit_code == 2
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert result.stderr.strip().count("\n") == 0 and "--size" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "ds").exists()


def test_cli_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("")
    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not an archbench synthetic data set" in result.stderr


def test_cli_generates_and_prints_the_fingerprint(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["synth", "--out", str(out), "--seed", "0", "--train", "8", "--val", "4", "--size", "96"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    fingerprint = synthetic.read_info(out).fingerprint
    assert fingerprint in result.stdout and str(out) in result.stdout
    assert "8 images" in result.stdout and "4 images" in result.stdout
