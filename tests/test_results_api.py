"""``archbench.results``: the checked-in board's records read from Python, cheaply and as the leaderboard reads them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest

from archbench.errors import UserError
from archbench.results import board, query, runs
from archbench.spec.terms import terms_of

from helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
BOARD = ROOT / "results" / "board"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return runs(BOARD)


def board_records() -> list[dict]:
    """The board's record files, read directly: what every expectation below is counted from."""
    return [json.loads(f.read_text()) for f in sorted((BOARD / "runs").glob("*.json"))]


def test_reading_results_imports_no_torch():
    code = (
        "import sys\nfrom archbench.results import board, query, runs\n"
        f"runs({str(BOARD)!r}); board({str(BOARD)!r}); query(neck='fpn', results={str(BOARD)!r})\n"
        "assert 'torch' not in sys.modules, 'reading records imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_one_flat_row_per_record(frame):
    files = sorted((BOARD / "runs").glob("*.json"))
    assert len(frame) == len(files) >= 60
    assert not frame.map(lambda v: isinstance(v, (Mapping, list))).any().any(), "a cell holds a dict or a list"
    assert list(frame.columns[:6]) == ["task", "neck", "spec_hash", "phi", "preset", "terms"]
    for column in ("metrics.AP50", "metrics.APs", "costs.gflops", "costs.params_total", "costs.latency_ms"):
        assert column in frame.columns
    for column in ("timing.images_per_s", "dataset.name", "dataset.fingerprint", "train.lr", "train.batch_size"):
        assert column in frame.columns
    assert set(frame["status"]) == {"ok"} and frame["terms"].isin(["native", "efficientdet"]).all()


def test_rows_hold_what_their_record_files_say(frame):
    for _, row in frame.iterrows():
        record = json.loads(Path(row["record"]).read_text())
        assert (row["neck"], row["phi"], row["seed"]) == (record["neck"], record["phi"], record["seed"])
        assert row["score"] == record["metrics"]["AP"] == row["metrics.AP"] and row["metric"] == "AP"
        assert row["metrics.AP50"] == record["metrics"]["AP50"]
        assert row["costs.gflops"] == record["costs"]["gflops"]
        assert row["train.epochs"] == record["config"]["train"]["epochs"]
        assert row["dataset.fingerprint"] == record["dataset"]["fingerprint"]


def test_query_filters_by_one_value_or_a_list():
    records = board_records()
    terms = terms_of(records[0]["config"])
    bifpn = query(neck="bifpn", phi=0, results=BOARD)
    seeds = sorted(r["seed"] for r in records if r["neck"] == "bifpn" and r["phi"] == 0)
    assert len(seeds) >= 2 and sorted(bifpn["seed"]) == seeds
    assert set(bifpn["neck"]) == {"bifpn"} and set(bifpn["phi"]) == {0}
    two = query(neck=["bifpn", "fpn"], phi=range(2), task="det", preset="proxy", terms=terms, results=BOARD)
    expected = [
        r for r in records if r["neck"] in ("bifpn", "fpn") and r["phi"] in (0, 1) and terms_of(r["config"]) == terms
    ]
    assert len(two) == len(expected) >= 8 and set(two["neck"]) == {"bifpn", "fpn"}
    assert len(query(neck="fpn", results=BOARD)) == sum(r["neck"] == "fpn" for r in records)


def test_query_for_what_no_run_has_is_an_empty_frame(frame):
    for empty in (
        query(neck="no_such_neck", results=BOARD),
        query(phi=9, results=BOARD),
        query(terms="no_such_terms", results=BOARD),
    ):
        assert empty.empty and list(empty.columns) == list(frame.columns)


def test_an_unknown_results_folder_is_a_user_error(tmp_path):
    for read in (runs, board, lambda r: query(neck="fpn", results=r)):
        with pytest.raises(UserError, match="not a results folder"):
            read(tmp_path / "nowhere")


def test_board_is_what_the_leaderboard_command_reports():
    cli = run_cli("leaderboard", "--results", str(BOARD), "--format", "csv")
    assert cli.returncode == 0, cli.stderr
    reported = pd.read_csv(io.StringIO(cli.stdout))
    table = board(BOARD)
    cells = {(terms_of(r["config"]), r["epochs"], r["neck"], r["phi"]) for r in board_records()}
    assert list(table.columns) == list(reported.columns) and len(table) == len(reported) == len(cells)
    pd.testing.assert_frame_equal(table, reported, check_dtype=False)


def test_failed_runs_and_missing_metrics(tmp_path):
    """A failed run is a row with its reason and no score; COCO's -1 (no object of a size) is NaN, as on the board."""
    (tmp_path / "runs").mkdir()
    source = sorted((BOARD / "runs").glob("det-fpn-phi0-*.json"))
    record = json.loads(source[0].read_text())
    record["metrics"]["APl"] = -1.0
    (tmp_path / "runs" / source[0].name).write_text(json.dumps(record))
    failed = {k: v for k, v in json.loads(source[1].read_text()).items() if k not in ("metrics", "costs", "timing")}
    failed |= {"status": "failed", "reason": "diverged at step 3"}
    (tmp_path / "runs" / source[1].name).write_text(json.dumps(failed))
    frame = runs(tmp_path).set_index("status")
    assert pd.isna(frame.at["ok", "metrics.APl"]) and frame.at["ok", "metrics.AP"] == record["metrics"]["AP"]
    assert frame.at["failed", "reason"] == "diverged at step 3" and pd.isna(frame.at["failed", "score"])
    assert board(tmp_path)["n_seeds"].tolist() == [1]


def test_an_empty_results_folder_has_no_rows(tmp_path):
    (tmp_path / "runs").mkdir()
    assert runs(tmp_path).empty and board(tmp_path).empty
