"""scripts/make_leaderboard.py's batching: necks that still need training are paired first, so no slot of --jobs
idles beside a skipped run; every neck is still passed on (archbench run decides by config hash)."""

from __future__ import annotations

import json
from pathlib import Path

from scriptkit import load_script


def _record(runs: Path, neck: str, *, phi=0, seed=0, epochs=32, terms="efficientdet", status="ok", **config):
    body = {"status": status, "neck": neck, "phi": phi, "seed": seed, "epochs": epochs,
            "config": {"terms": terms, "train": {"ema": config.pop("ema", False)}, **config}}  # fmt: skip
    (runs / f"det-{neck}-{len(list(runs.iterdir()))}.json").write_text(json.dumps(body))


def test_pending_necks_come_first_and_none_is_dropped(tmp_path):
    script = load_script("make_leaderboard")
    runs = tmp_path / "runs"
    runs.mkdir()
    _record(runs, "a")
    _record(runs, "c")
    # none of these is the block's (phi 0, seed 0, 32 epochs, efficientdet terms, plain) ok record
    _record(runs, "b", status="failed")
    _record(runs, "d", epochs=8)
    _record(runs, "e", terms="native")
    _record(runs, "f", seed=1)
    _record(runs, "g", data_seed=2)
    _record(runs, "h", ema=True)
    (runs / ".tmp-x.json").write_text("{not json")  # a record being written: not read
    necks = ["a", "b", "c", "d", "e", "f", "g", "h"]
    order = script.pending_first(necks, tmp_path, "0", "0", 32, "efficientdet")
    assert order == ["b", "d", "e", "f", "g", "h", "a", "c"]
    assert script.batches(order, 2)[:3] == [["b", "d"], ["e", "f"], ["g", "h"]]
    assert script.pending_first(necks, tmp_path, "0", "0", None, "efficientdet")[-3:] == ["a", "c", "d"]
