"""Trained runs: kept weights, loading them back (refusing bad ones), ``archbench eval`` and ``archbench predict``."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from archbench.data import synthetic
from archbench.errors import UserError
from archbench.models.detector import Detector
from archbench.runs import layout
from archbench.runs.parallel import sweep_parallel
from archbench.runs.records import RunRecord
from archbench.runs.sweep import Prepared, RunRequest, sweep
from archbench.runs.trained import load_trained
from archbench.spec import resolve_spec
from archbench.train.trainer import TrainConfig

from helpers import SEG_CLASSES, make_segfolder, run_cli

TINY = TrainConfig(epochs=1, batch_size=8, warmup_steps=1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "data"
    synthetic.generate(root, n_train=16, n_val=8, size=64, workers=1)
    return root


def request(data_root, **kw) -> RunRequest:
    return RunRequest(**{"neck": "bifpn", "phi": 0, "seed": 0, "data": f"coco:{data_root}", "train": TINY, **kw})


@pytest.fixture(scope="module")
def det_run(data_root, tmp_path_factory):
    """(results folder, record) of one tiny detection run that kept its weights (do not change its files)."""
    results = tmp_path_factory.mktemp("det_results")
    (record,) = sweep([request(data_root, threads=2)], results)
    return results, record


def copied(det_run, tmp_path):
    """A copy of the tiny run's results folder and its record file there (for tests that change files)."""
    results = shutil.copytree(det_run[0], tmp_path / "results")
    return results, det_run[1].path(results)


def test_an_ok_run_keeps_its_weights_beside_its_record(det_run):
    results, record = det_run
    stem = record.path(results).stem
    path = layout.weights_path(results, stem)
    assert record.weights == {
        "path": f"weights/{stem}.pt",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "bytes": path.stat().st_size,
        "ema": False,
    }
    assert json.loads(record.path(results).read_text())["weights"] == record.weights
    assert not layout.checkpoint_path(results, record.config_hash).exists()
    assert [p.name for p in (results / "weights").iterdir()] == [f"{stem}.pt"]  # no temp file left
    state = torch.load(path, weights_only=True)
    assert state["ema"] is None and all(t.device.type == "cpu" for t in state["model"].values())


def test_no_keep_weights_keeps_none_under_the_same_config_hash(det_run, data_root, tmp_path):
    results, record = copied(det_run, tmp_path)
    unkept = replace(request(data_root, threads=2), keep_weights=False)
    assert Prepared(unkept).hash == det_run[1].config_hash
    (rerun,) = sweep([unkept], results, force=True)
    assert rerun.ok and rerun.weights is None and rerun.config_hash == det_run[1].config_hash
    assert "weights" not in json.loads(record.read_text())
    assert list((results / "weights").iterdir()) == []  # the earlier run's weights went with its record


def test_a_run_with_ema_keeps_both_and_is_loaded_with_the_ema_weights(data_root, tmp_path):
    ema = replace(TINY, ema=True, epochs=2)  # timm's EMA copies the weights for its first 2 steps
    (record,) = sweep([request(data_root, threads=2, train=ema)], tmp_path)
    assert record.weights["ema"] is True
    state = torch.load(tmp_path / record.weights["path"], weights_only=True)
    trained = load_trained(record.path(tmp_path))
    assert trained.ema
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor, state["ema"][name])
    assert any(not torch.equal(state["model"][k], state["ema"][k]) for k in state["model"])


def test_jobs_runs_keep_their_weights_too(data_root, tmp_path):
    (record,) = sweep_parallel([request(data_root, seed=1)], tmp_path, jobs=1, threads=1)
    path = tmp_path / record.weights["path"]
    assert record.ok and hashlib.sha256(path.read_bytes()).hexdigest() == record.weights["sha256"]


def test_loading_from_the_record_or_the_weights_gives_the_kept_model(det_run):
    results, record = det_run
    from_record = load_trained(record.path(results))
    from_weights = load_trained(results / record.weights["path"])
    assert from_record.record_path == from_weights.record_path == record.path(results).resolve()
    kept = torch.load(results / record.weights["path"], weights_only=True)["model"]
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = from_record.model(image), from_weights.model(image)
    for x, y in zip(a[0] + a[1], b[0] + b[1]):
        assert torch.equal(x, y)
    for name, tensor in from_record.model.state_dict().items():
        assert torch.equal(tensor, kept[name])
    assert not from_record.model.training and isinstance(from_record.model, Detector)


def test_eval_on_the_runs_data_reproduces_its_metrics_and_writes_an_eval_record(det_run, data_root, tmp_path):
    results, record = copied(det_run, tmp_path)
    before = sorted(p.name for p in (results / "runs").iterdir())
    res = run_cli("eval", str(record), "--data", f"coco:{data_root}", "--threads", "2")
    assert res.returncode == 0, res.stderr
    (path,) = (results / "evals").iterdir()
    content = json.loads(path.read_text())
    run = det_run[1]
    assert content["metrics"] == run.metrics  # the same numbers, bit for bit
    assert content["kind"] == "eval" and content["schema_version"] == 1
    assert content["run"]["record"] == f"runs/{record.name}" and content["run"]["config_hash"] == run.config_hash
    assert content["run"]["weights_sha256"] == run.weights["sha256"]
    assert content["dataset"]["name"] == f"coco:{data_root}" and content["dataset"]["n_val"] == 8
    assert path.name == f"{record.stem}-on-coco-data-{content['dataset']['fingerprint'][:8]}.json"
    assert content["environment"]["torch"] and content["command"].startswith("archbench eval")
    assert f"{run.metrics['AP']:.4f}" in res.stdout and str(path) in res.stdout.replace("\n", "")
    assert sorted(p.name for p in (results / "runs").iterdir()) == before  # the board's folder is untouched


def test_eval_refuses_data_with_another_class_count(det_run, data_root):
    results, record = det_run
    res = run_cli("eval", str(record.path(results)), "--data", f"coco:{data_root}", "--categories", "disc")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "1 classes (disc)" in res.stderr and "trained on 6" in res.stderr


def test_eval_reads_only_the_validation_split(det_run, data_root, tmp_path):
    results, record = copied(det_run, tmp_path)
    data = shutil.copytree(data_root, tmp_path / "data")
    (data / "annotations" / "instances_train.json").write_text("{not json")  # opening the train split would fail
    shutil.rmtree(data / "images" / "train")
    res = run_cli("eval", str(record), "--data", f"coco:{data}", "--threads", "2")
    assert res.returncode == 0, res.stderr
    (path,) = (results / "evals").iterdir()
    assert json.loads(path.read_text())["metrics"] == det_run[1].metrics


def test_a_seg_run_is_evaluated_on_its_validation_split_alone(tmp_path):
    folder = make_segfolder(tmp_path / "seg", n_train=8, n_val=2, size=(40, 32))
    req = RunRequest(neck="fpn", phi=0, seed=0, task="seg", data=f"segfolder:{folder}", train=TINY, threads=2)
    (record,) = sweep([req], tmp_path / "results")
    shutil.rmtree(folder / "images" / "train")
    shutil.rmtree(folder / "masks" / "train")
    res = run_cli("eval", str(record.path(tmp_path / "results")), "--threads", "2")
    assert res.returncode == 0, res.stderr
    (path,) = (tmp_path / "results" / "evals").iterdir()
    assert json.loads(path.read_text())["metrics"] == record.metrics


def test_a_corrupt_weights_file_is_refused(det_run, tmp_path):
    results, record = copied(det_run, tmp_path)
    weights = results / det_run[1].weights["path"]
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="corrupt weights file") as exc:
        load_trained(record)
    assert str(weights) in exc.value.message
    res = run_cli("eval", str(record))
    assert res.returncode == 2 and "corrupt weights file" in res.stderr and "Traceback" not in res.stderr


def test_a_missing_weights_file_is_refused(det_run, tmp_path):
    results, record = copied(det_run, tmp_path)
    weights = results / det_run[1].weights["path"]
    weights.unlink()
    with pytest.raises(UserError, match="is missing") as exc:
        load_trained(record)
    assert str(weights) in exc.value.message
    with pytest.raises(UserError, match="no such file"):
        load_trained(weights)


def test_weights_of_another_model_are_refused_as_mismatched(det_run, tmp_path):
    results, record = copied(det_run, tmp_path)
    run = det_run[1]
    weights = results / run.weights["path"]
    other = Detector(resolve_spec("fpn"), load_trained(record).model_config, num_classes=6)
    torch.save({"model": other.state_dict(), "ema": None}, weights)  # a checksum that matches, the wrong model
    entry = {**run.weights, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    replace(RunRecord.load(record), weights=entry).save(results)
    with pytest.raises(UserError, match="mismatched weights") as exc:
        load_trained(record)
    assert str(weights) in exc.value.message


def test_predict_draws_boxes_and_writes_coco_results_skipping_unreadable_images(det_run, data_root, tmp_path):
    results, record = det_run
    ann = data_root / "annotations" / "instances_val.json"
    names = [img["file_name"] for img in json.loads(ann.read_text())["images"][:3]]
    images = [str(data_root / "images" / "val" / name) for name in names]
    (tmp_path / "notes.png").write_text("not an image")
    bad = [str(tmp_path / "notes.png"), str(tmp_path / "gone.jpg")]
    out = tmp_path / "out"
    res = run_cli(
        "predict", str(record.path(results)), images[0], *bad, *images[1:], "-o", str(out),
        "--score-threshold", "0.01", "--coco-ann", str(ann),
    )  # fmt: skip
    assert res.returncode == 1
    assert all(b in res.stderr for b in bad) and "not a readable image" in res.stderr
    stems = [Path(name).stem for name in names]
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{s}.png" for s in stems), "detections.json"])
    for name, stem in zip(names, stems):
        drawn, source = Image.open(out / f"{stem}.png"), Image.open(data_root / "images" / "val" / name)
        assert drawn.size == (source.width * 8, source.height * 8)  # 64 px enlarged to 512 for legible labels
    detections = json.loads((out / "detections.json").read_text())
    assert detections and {d["file_name"] for d in detections} == set(names)
    assert all(d["score"] >= 0.01 for d in detections)
    gt = COCO(str(ann))
    loaded = gt.loadRes(str(out / "detections.json"))
    assert len(loaded.anns) == len(detections)
    assert {a["image_id"] for a in loaded.anns.values()} == {
        i["id"] for i in gt.dataset["images"] if i["file_name"] in names
    }
    assert {d["category_id"] for d in detections} <= set(gt.getCatIds()) == {1, 3, 5, 7, 9, 11}
    for d in detections:  # boxes in the files' pixels
        x, y, w, h = d["bbox"]
        assert 0 <= x <= x + w <= 64 and 0 <= y <= y + h <= 64


def test_predict_refuses_an_output_path_that_is_a_file(det_run, data_root, tmp_path):
    results, record = det_run
    (tmp_path / "out").write_text("")
    image = next((data_root / "images" / "val").iterdir())
    res = run_cli("predict", str(record.path(results)), str(image), "-o", str(tmp_path / "out"))
    assert res.returncode == 2 and "a file, not a folder" in res.stderr


def test_a_seg_run_predicts_class_masks(tmp_path):
    folder = make_segfolder(tmp_path / "seg", n_train=8, n_val=2, size=(40, 32))
    req = RunRequest(neck="fpn", phi=0, seed=0, task="seg", data=f"segfolder:{folder}", train=TINY, threads=2)
    (record,) = sweep([req], tmp_path / "results")
    images = sorted((folder / "images" / "val").iterdir())
    res = run_cli("predict", str(record.path(tmp_path / "results")), *map(str, images), "-o", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    for image in images:
        mask = np.asarray(Image.open(tmp_path / "out" / f"{image.stem}_mask.png"))
        assert mask.shape == (32, 40) and mask.max() < len(SEG_CLASSES)
        assert Image.open(tmp_path / "out" / f"{image.stem}.png").size == (40, 32)
    assert not (tmp_path / "out" / "detections.json").exists()
