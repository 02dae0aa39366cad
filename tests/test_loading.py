"""Data loading: decoded images kept (a mapped file per split), DataLoader workers, batched segmentation scoring.

Every check is an equivalence (same items, same batches, same counts, bit for bit), never a timing.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from archbench.data import synthetic
from archbench.data.coco import CocoDetection, coco_layout, collate_detection
from archbench.data.coco_semantic import open_coco_semantic
from archbench.data.decoded import decoded_images
from archbench.data.seg_dataset import collate_segmentation
from archbench.data.seg_sources import synthetic_classes
from archbench.data.segfolder import open_split, read_classes
from archbench.data.transforms import _INV_STD, _MEAN, to_canvas
from archbench.errors import UserError
from archbench.segmentation import confusion_matrix
from archbench.train.seg_trainer import original_frame_prediction, original_frame_predictions, same_frame_runs
from archbench.train.trainer import TrainConfig, Trainer

from helpers import make_segfolder, run_cli

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def same(a: Any, b: Any) -> bool:
    """Nested tensors / arrays / containers equal bit for bit (and of the same dtype)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def items(ds: Any, epochs: tuple[int, ...] = (0, 1)) -> list[Any]:
    """Every item of ``ds`` at each of ``epochs``."""
    out = []
    for epoch in epochs:
        ds.set_epoch(epoch)
        out += [ds[i] for i in range(len(ds))]
    return out


@pytest.fixture(scope="module")
def built_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated set (16 + 8 images of 64 px, PNG images and masks)."""
    return synthetic.generate(tmp_path_factory.mktemp("syn") / "ds", n_train=16, n_val=8, size=64, workers=1).path


def mixed_coco(root: Path) -> tuple[Path, Path]:
    """A COCO folder with PNG (RGB and grey) and JPEG images of different sizes; returns (ann_file, images_dir)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for i, (w, h, ext, mode) in enumerate([(40, 30, "png", "RGB"), (64, 48, "jpg", "RGB"), (50, 50, "png", "L")]):
        pixels = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{i}.{ext}")
        images.append({"id": i + 1, "file_name": f"{i}.{ext}", "width": w, "height": h})
        anns.append(
            {
                "id": i + 1,
                "image_id": i + 1,
                "category_id": 1,
                "bbox": [4, 5, 20, 15],
                "segmentation": [[4, 5, 24, 5, 24, 20]],
            }
        )
    ann = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    (root / "ann.json").write_text(json.dumps(ann))
    return root / "ann.json", root / "images"


# ---------------------------------------------------------------------------- decoded images kept


@pytest.mark.parametrize("train", [True, False])
def test_kept_images_give_the_same_detection_items_as_files(tmp_path: Path, train: bool) -> None:
    ann_file, images_dir = mixed_coco(tmp_path)
    kept = CocoDetection(ann_file, images_dir, resolution=56, train=train, seed=3, decoded_cache=tmp_path / "c")
    files = CocoDetection(ann_file, images_dir, resolution=56, train=train, seed=3, decoded_budget=0)
    assert [p is not None for p in kept._images.pixels] == [True, False, True]  # JPEG is read from its file
    assert files._images.nbytes == 0
    assert same(items(kept), items(files))


def test_kept_images_give_the_same_segmentation_items_as_files(built_in: Path, tmp_path: Path) -> None:
    classes = synthetic_classes(built_in)
    for split, train in (("train", True), ("val", False)):
        kept = open_split(built_in, split, classes, resolution=48, train=train, seed=1, decoded_cache=tmp_path)
        files = open_split(built_in, split, classes, resolution=48, train=train, seed=1, decoded_budget=0)
        assert kept._images.nbytes == len(kept) * 64 * 64 * 3 and files._images.nbytes == 0
        assert same(items(kept), items(files))
        assert same([kept.label_map(i) for i in range(len(kept))], [files.label_map(i) for i in range(len(files))])


def test_a_split_over_the_budget_is_read_from_its_files(tmp_path: Path) -> None:
    ann_file, images_dir = mixed_coco(tmp_path)
    just_over = 40 * 30 * 3 + 64 * 48 * 3 + 50 * 50 * 3 - 1
    ds = CocoDetection(
        ann_file, images_dir, resolution=32, train=False, decoded_budget=just_over, decoded_cache=tmp_path / "c"
    )
    assert ds._images.pixels == [None, None, None]


def test_splits_of_the_same_files_share_one_copy_until_a_file_changes(tmp_path: Path) -> None:
    ann_file, images_dir = mixed_coco(tmp_path)
    cache = tmp_path / "c"
    a = CocoDetection(ann_file, images_dir, resolution=32, train=True, decoded_cache=cache)
    b = CocoDetection(ann_file, images_dir, resolution=64, train=False, decoded_cache=cache)
    assert a._images is b._images
    assert not a._images.pixels[0].flags.writeable  # shared, so never written
    path = images_dir / "0.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(path)
    os.utime(path, ns=(1, 1))
    c = CocoDetection(ann_file, images_dir, resolution=32, train=False, decoded_cache=cache)
    assert c._images is not a._images and int(c._images.pixels[0][0, 0, 0]) == 1


def test_an_undecodable_image_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    Image.new("RGB", (40, 30)).save(path)
    path.write_bytes(path.read_bytes()[:60])  # the header survives, the pixels do not
    with pytest.raises(UserError, match="broken.png: cannot decode the image"):
        decoded_images([str(path)], [(40, 30)], folder=tmp_path / "c")


def test_normalisation_table_matches_the_arithmetic() -> None:
    levels = np.arange(256, dtype=np.uint8)
    image = Image.fromarray(np.stack([levels, levels[::-1], np.roll(levels, 7)], axis=1)[None].repeat(3, 0))
    expected = ((np.asarray(image).astype(np.float32) - _MEAN) * _INV_STD).transpose(2, 0, 1)
    canvas = to_canvas(image, 256).numpy()
    assert np.array_equal(canvas[:, :3, :256], expected) and not canvas[:, 3:].any()


def test_datasets_pickle_for_spawned_workers(built_in: Path, tmp_path: Path) -> None:
    seg = open_split(built_in, "train", synthetic_classes(built_in), resolution=32, train=True, decoded_cache=tmp_path)
    on_disk = open_split(built_in, "val", synthetic_classes(built_in), resolution=32, train=False, decoded_budget=0)
    coco_seg = open_coco_semantic(*mixed_coco(tmp_path), resolution=32, train=True)
    for ds in (seg, on_disk, coco_seg):
        copy = pickle.loads(pickle.dumps(ds))
        assert same(copy[1], ds[1])
    assert seg._images.source is not None and seg._images.nbytes > 0  # pickled as its file, mapped again


# ---------------------------------------------------------------------------- worker processes


class _Batches(Trainer):
    """A trainer whose evaluation returns the batches it was served (no model work)."""

    def _predict(self, model: nn.Module, batches: Any, val_ds: Any) -> list[Any]:
        return list(batches)

    def _score(self, partial: Any, val_ds: Any, info: dict[str, Any]) -> dict[str, Any]:
        return {"batches": partial}


def served(train: Any, val: Any, collate: Any, workers: int) -> tuple[list[Any], list[Any]]:
    """The training batches of epochs 0 and 1 and the evaluation batches, served by ``workers`` processes."""
    trainer_cls = type("T", (_Batches,), {"collate": staticmethod(collate)})
    cfg = TrainConfig(batch_size=4, workers=workers)
    trainer = trainer_cls(nn.Linear(1, 1), train, cfg, seed=5, device=torch.device("cpu"))
    batches = [list(trainer._loader(epoch)) for epoch in (0, 1)]
    return batches, trainer.evaluate(val, {})["batches"]


def test_workers_serve_the_same_detection_batches(built_in: Path, tmp_path: Path) -> None:
    layout = coco_layout(built_in)
    train = CocoDetection(*layout["train"], resolution=48, train=True, decoded_cache=tmp_path)
    val = CocoDetection(*layout["val"], resolution=48, train=False)
    in_process = served(train, val, collate_detection, 0)
    assert same(served(train, val, collate_detection, 2), in_process)
    assert not same(in_process[0][0], in_process[0][1])  # epochs differ: the comparison can fail


def test_workers_serve_the_same_segmentation_batches(tmp_path: Path) -> None:
    root = make_segfolder(tmp_path / "d", size=(40, 24))
    classes = read_classes(root)
    train = open_split(root, "train", classes, resolution=32, train=True, decoded_cache=tmp_path / "c")
    val = open_split(root, "val", classes, resolution=32, train=False, decoded_budget=0)
    assert same(served(train, val, collate_segmentation, 2), served(train, val, collate_segmentation, 0))


def test_pinned_memory_only_for_cuda() -> None:
    for device, pinned in (("cpu", False), ("cuda", True)):
        fake = SimpleNamespace(cfg=TrainConfig(workers=3), device=torch.device(device))
        assert Trainer._loading(fake) == {"num_workers": 3, "pin_memory": pinned}  # type: ignore[arg-type]


def test_workers_leave_the_config_hash_alone() -> None:
    assert TrainConfig(workers=2).to_dict() == TrainConfig().to_dict()


@pytest.mark.parametrize("bad", ["-1", "1.5", "two", " ", "²"])
def test_bad_workers_are_refused_clearly(bad: str) -> None:
    result = run_cli("run", "--neck", "bifpn", "--workers", bad)
    assert result.returncode == 2, result.stderr
    text = " ".join((result.stdout + result.stderr).split())
    assert f"--workers {bad!r}" in text and "a whole number 0 or more" in text
    with pytest.raises(UserError, match="workers -1"):
        TrainConfig(workers=-1)


# ---------------------------------------------------------------------------- batched segmentation scoring


def test_batched_scoring_counts_what_image_by_image_scoring_counts() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, 32, 32, generator=gen).contiguous(memory_format=torch.channels_last)
    metas = [{"orig_size": (20, 30), "scale": 1.0}] * 3 + [{"orig_size": (40, 50), "scale": 0.64}] * 2
    metas += [{"orig_size": (20, 30), "scale": 1.0}]
    assert same_frame_runs(metas) == [(0, 3), (3, 5), (5, 6)]
    truth = [torch.randint(0, 5, m["orig_size"], generator=gen) for m in metas]
    one_by_one = sum(
        confusion_matrix(original_frame_prediction(x, m), t, 4, 4) for x, m, t in zip(logits, metas, truth)
    )
    batched = sum(
        confusion_matrix(original_frame_predictions(logits[a:b], metas[a]), torch.stack(truth[a:b]), 4, 4)
        for a, b in same_frame_runs(metas)
    )
    assert torch.equal(batched, one_by_one)
