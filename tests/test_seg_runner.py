"""``archbench run --task seg`` end to end at tiny sizes, on each data source, with the shared run behaviour."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from archbench.data import seg_sources, synthetic
from archbench.data.coco import _make_coco
from archbench.data.coco_semantic import semantic_map
from archbench.data.seg_sources import open_segmentation_data
from archbench.runs.layout import checkpoint_path
from archbench.runs.records import load_records
from archbench.runs.sweep import Prepared, RunRequest, sweep
from archbench.train.seg_trainer import SegmentationTrainer
from archbench.train.trainer import TrainConfig

from helpers import SEG_CLASSES, make_segfolder, run_cli

TINY = TrainConfig(epochs=2, batch_size=8, warmup_steps=1)
SYNTH_CLASSES = ["background", *(c.name for c in synthetic.CLASSES)]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    synthetic.generate(root, n_train=16, n_val=8, size=64, workers=1)
    return root


def seg_request(data: str, **kw) -> RunRequest:
    return RunRequest(
        **{"neck": "fpn", "phi": 0, "seed": 0, "task": "seg", "data": data, "train": TINY, "threads": 2, **kw}
    )


def check_record(path_dir, class_names: list[str]) -> dict:
    """The one record under ``path_dir``, checked to be a complete seg record; returned."""
    files = list((path_dir / "runs").iterdir())
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    assert rec["status"] == "ok" and rec["task"] == "seg" and rec["config"]["task"] == "seg"
    m = rec["metrics"]
    assert set(m) == {"mIoU", "pixel_accuracy", "mean_accuracy", "per_class_IoU"}
    assert list(m["per_class_IoU"]) == class_names == rec["dataset"]["class_names"]
    present = [v for v in m["per_class_IoU"].values() if v is not None]
    assert m["mIoU"] == pytest.approx(sum(present) / len(present)) and 0 < m["pixel_accuracy"] <= 1
    costs = rec["costs"]
    assert costs["params_total"] == costs["params_backbone"] + costs["params_neck"] + costs["params_head"]
    assert costs["gflops_head"] > 0 and costs["latency_ms"] > 0
    assert rec["dataset"]["ignore_index"] == 255 and rec["steps"] == 4
    return rec


def test_seg_run_on_a_segfolder(tmp_path):
    root = make_segfolder(tmp_path / "d", n_train=16, n_val=4, size=(64, 48))
    (rec,) = sweep([seg_request(f"segfolder:{root}")], tmp_path / "r")
    check_record(tmp_path / "r", list(SEG_CLASSES))
    assert rec.dataset and rec.dataset["stats"]["train"]["images"] == 16
    assert not checkpoint_path(tmp_path / "r", rec.config_hash).exists()


def test_seg_run_on_coco_instances(synth_root, tmp_path):
    sweep([seg_request(f"coco:{synth_root}", categories=("disc", "ring"))], tmp_path)
    rec = check_record(tmp_path, ["background", "disc", "ring"])
    assert rec["config"]["data"]["categories"] == ["disc", "ring"]


def test_seg_run_on_the_builtin_data(synth_root, tmp_path, monkeypatch):
    real = synthetic.ensure_synthetic
    monkeypatch.setattr(
        seg_sources.synthetic,
        "ensure_synthetic",  # the built-in path, on a tiny generated set
        functools.partial(real, n_train=16, n_val=8, size=64, workers=1),
    )
    monkeypatch.setenv("ARCHBENCH_CACHE", str(tmp_path / "cache"))
    sweep([seg_request("synthetic")], tmp_path / "r")
    rec = check_record(tmp_path / "r", SYNTH_CLASSES)
    assert rec["dataset"]["name"] == "synthetic"
    det = Prepared(RunRequest(neck="fpn", phi=0, seed=0, task="det", data="synthetic", train=TINY))
    assert det.hash != rec["config_hash"]  # the task is part of the config hash
    assert sweep([seg_request("synthetic")], tmp_path / "r") == []  # done: skipped


def test_coco_instances_make_the_same_maps_as_the_png_masks(synth_root, tmp_path):
    _, val, info = open_segmentation_data(f"coco:{synth_root}", resolution=64, cache_root=tmp_path)
    assert info["class_names"] == SYNTH_CLASSES
    agree = total = 0
    for i, file in enumerate(val.files):
        png = np.asarray(Image.open(synth_root / "masks" / "val" / file.path.split("/")[-1]))
        agree, total = agree + int((val.label_map(i).numpy() == png).sum()), total + png.size
    assert agree / total > 0.99  # polygons of the visible parts, rasterised, vs the drawn masks


def test_bad_coco_segmentation_is_named(synth_root, tmp_path):
    import shutil

    root = tmp_path / "coco"
    shutil.copytree(synth_root, root)
    ann_file = root / "annotations" / "instances_val.json"
    data = json.loads(ann_file.read_text())
    data["annotations"][0]["segmentation"] = [[1, 2, 3, 4]]
    ann_file.write_text(json.dumps(data))
    res = run_cli("run", "--task", "seg", "--data", f"coco:{root}", "--results", str(tmp_path / "r"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"annotation id {data['annotations'][0]['id']}" in res.stderr and "at least 3 points" in res.stderr


def test_seg_resume_gives_the_same_metrics(tmp_path, monkeypatch):
    root = make_segfolder(tmp_path / "d", n_train=16, n_val=4)
    req = seg_request(f"segfolder:{root}")
    (straight,) = sweep([req], tmp_path / "a")
    real_epoch = SegmentationTrainer.train_epoch

    def killed_after_first_epoch(self, on_step=None):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self, on_step)

    monkeypatch.setattr(SegmentationTrainer, "train_epoch", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        sweep([req], tmp_path / "b")
    monkeypatch.setattr(SegmentationTrainer, "train_epoch", real_epoch)
    (resumed,) = sweep([req], tmp_path / "b", resume=True)
    assert resumed.resumed_from_epoch == 1 and resumed.metrics == straight.metrics


def test_cli_seg_run_and_failed_run(tmp_path, monkeypatch):
    root = make_segfolder(tmp_path / "d", n_train=8, n_val=2)
    res = run_cli(
        "run",
        "--task",
        "seg",
        "--neck",
        "fpn",
        "--data",
        f"segfolder:{root}",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--results",
        str(tmp_path / "r"),
    )
    assert res.returncode == 0 and "mIoU" in res.stderr, res.stderr
    real_loss = SegmentationTrainer._loss

    def nan_loss(self, images, labels):
        out = real_loss(self, images, labels)
        return {"loss": out["loss"] * float("nan")}

    monkeypatch.setattr(SegmentationTrainer, "_loss", nan_loss)
    failed = run_cli(
        "run",
        "--task",
        "seg",
        "--neck",
        "bifpn",
        "--data",
        f"segfolder:{root}",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--results",
        str(tmp_path / "r"),
    )
    assert failed.returncode == 1 and "diverged at step 0" in failed.stderr
    assert sorted(r.status for r in load_records(tmp_path / "r")) == ["failed", "ok"]


def test_semantic_map_paints_small_over_large_and_crowd_as_ignore():
    square = lambda x0, y0, s: [[x0, y0, x0 + s, y0, x0 + s, y0 + s, x0, y0 + s]]  # noqa: E731
    crowd = np.zeros((10, 12), np.uint8, order="F")
    crowd[7:, 9:] = 1
    rle = mask_utils.encode(crowd)
    rle["counts"] = rle["counts"].decode()
    coco = _make_coco(
        {
            "images": [{"id": 1, "width": 12, "height": 10, "file_name": "a.png"}],
            "categories": [{"id": 5, "name": "a"}, {"id": 9, "name": "b"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 9, "segmentation": square(1, 1, 2), "area": 4.0, "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 5, "segmentation": square(0, 0, 6), "area": 36.0, "iscrowd": 0},
                {"id": 3, "image_id": 1, "category_id": 5, "segmentation": rle, "area": 9.0, "iscrowd": 1},
            ],
        }
    )
    labels = semantic_map(coco, 1, {5: 1, 9: 2}, 255)
    assert labels.shape == (10, 12)
    assert (labels[1:3, 1:3] == 2).all()  # the small 'b' square stays on top of the large 'a' one
    assert (labels[0, :6] == 1).all() and labels[6, 6] == 0
    assert (labels[7:, 9:] == 255).all() and (labels == 255).sum() == 9  # the crowd region is ignored
