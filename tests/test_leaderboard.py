"""Leaderboard, equal-cost views, rendering and plots on fabricated records (hand-checked numbers)."""

from __future__ import annotations

import io
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from archbench.board import plots
from archbench.board.aggregate import build_table, failed_runs, group_of, pareto_mask, require_records
from archbench.board.compose import compose
from archbench.board.formats import render, render_md
from archbench.board.latency import read_sittings
from archbench.board.provenance import changes_outside, clean_commits, setup_table
from archbench.errors import UserError
from archbench.runs.records import RunRecord, load_records

from helpers import run_cli

#: (neck, phi) -> (gflops, mean AP). Seeds add -0.01 / +0.01, so mean = AP, sample std = 0.01 * sqrt(2).
POINTS: dict[tuple[str, int], tuple[float, float]] = {
    ("fpn", 0): (1.0, 0.30),
    ("fpn", 1): (2.0, 0.35),
    ("fpn", 2): (4.0, 0.40),
    ("bifpn", 0): (1.5, 0.33),
    ("bifpn", 1): (3.0, 0.38),
    ("bifpn", 2): (6.0, 0.42),
    ("pan", 0): (2.0, 0.29),
    ("pan", 1): (4.0, 0.36),
    ("pan", 2): (8.0, 0.39),
}
SEED_OFFSET = {0: -0.01, 1: 0.01}
STD = 0.01 * math.sqrt(2)


def make_record(
    neck: str,
    phi: int,
    seed: int,
    *,
    ap: float = 0.3,
    gflops: float = 1.0,
    status: str = "ok",
    reason: str | None = None,
    task: str = "det",
    **metric_overrides: float,
) -> dict[str, Any]:
    """A realistic run record (the fields leaderboards read, plus some they do not)."""
    metrics = {
        "AP": ap,
        "AP50": ap + 0.2,
        "AP75": ap - 0.05,
        "APs": ap - 0.1,
        "APm": ap,
        "APl": ap + 0.1,
        "AR1": 0.2,
        "AR10": 0.4,
        "AR100": 0.5,
        "ARs": 0.3,
        "ARm": 0.5,
        "ARl": 0.6,
        **metric_overrides,
    }
    rec: dict[str, Any] = {
        "schema_version": 1,
        "status": status,
        "task": task,
        "neck": neck,
        "neck_ref": neck,
        "phi": phi,
        "preset": "proxy",
        "seed": seed,
        "epochs": 2,
        "dataset": {"name": "synthetic", "fingerprint": "abc123", "sizes": {"train": 2048, "val": 512}},
        "metrics": metrics if status == "ok" else {},
        "costs": {
            "params_total": 3.0e6 + 1e6 * phi,
            "params_backbone": 2.0e6,
            "params_neck": 0.5e6,
            "params_head": 0.5e6,
            "gflops": gflops,
            "gflops_neck": gflops / 4,
            "latency_ms": 10.0 * gflops,
        },
        "timing": {"train_seconds": 60.0, "eval_seconds": 5.0, "images_per_s": 100.0 / gflops},
        "config_hash": f"{neck}{phi}{seed}".ljust(16, "0")[:16],
        "spec_hash": f"spec-{neck}",
    }
    if status == "failed":
        rec["reason"] = reason or "loss became nan at step 12"
    return rec


def sweep() -> list[dict[str, Any]]:
    """3 necks x 3 phi x 2 seeds of ok records plus one failed run."""
    recs = [
        make_record(neck, phi, seed, ap=ap + SEED_OFFSET[seed], gflops=g)
        for (neck, phi), (g, ap) in POINTS.items()
        for seed in (0, 1)
    ]
    recs.append(make_record("fpn", 3, 0, gflops=8.0, status="failed", reason="loss became nan at step 12"))
    return recs


@pytest.fixture()
def table() -> pd.DataFrame:
    return build_table(sweep())


def row(table: pd.DataFrame, neck: str, phi: int) -> pd.Series:
    sel = table[(table["neck"] == neck) & (table["phi"] == phi)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_seed_statistics(table):
    assert len(table) == 9
    for (neck, phi), (g, ap) in POINTS.items():
        r = row(table, neck, phi)
        assert r["n_seeds"] == 2
        assert r["AP_mean"] == pytest.approx(ap)
        assert r["AP_std"] == pytest.approx(STD)
        assert r["AP50_mean"] == pytest.approx(ap + 0.2)
        assert r["gflops"] == pytest.approx(g)
        assert r["params_total"] == pytest.approx(3.0e6 + 1e6 * phi)
        assert r["score"] == pytest.approx(ap) and r["metric"] == "AP"


def test_single_seed_std_is_nan_and_sentinel_ignored():
    recs = [
        make_record("fpn", 0, 0, ap=0.3, APl=-1.0),
        make_record("fpn", 0, 1, ap=0.5, APl=0.6),
        make_record("pan", 0, 0, ap=0.4),
    ]
    t = build_table(recs)
    assert row(t, "pan", 0)["n_seeds"] == 1 and math.isnan(row(t, "pan", 0)["AP_std"])
    assert row(t, "fpn", 0)["APl_mean"] == pytest.approx(0.6)  # -1 (no ground truth) is missing, not 0


def test_ranks(table):
    order = [
        ("bifpn", 2),
        ("fpn", 2),
        ("pan", 2),
        ("bifpn", 1),
        ("pan", 1),
        ("fpn", 1),
        ("bifpn", 0),
        ("fpn", 0),
        ("pan", 0),
    ]
    for rank, (neck, phi) in enumerate(order, start=1):
        assert row(table, neck, phi)["rank"] == rank
    assert list(table["rank"]) == list(range(1, 10))  # sorted by rank


def test_pareto_flags(table):
    # Hand-checked: every pan point is dominated (pan@2 by fpn@2 at equal cost, pan@4 by fpn@4,
    # pan@8 by bifpn@6); fpn and bifpn points alternate along the front.
    for neck, phi in POINTS:
        assert bool(row(table, neck, phi)["pareto"]) is (neck != "pan"), (neck, phi)


def test_pareto_mask_ties_and_missing():
    assert pareto_mask([0.5, 0.5, 0.4, math.nan], [1.0, 1.0, 1.0, 0.1]) == [True, True, False, False]
    assert pareto_mask([0.5, 0.6], [1.0, 2.0]) == [True, True]


def test_groups_are_separate():
    recs = sweep() + [dict(make_record("fpn", 0, 0, ap=0.9, gflops=1.0), preset="effdet")]
    t = build_table(recs)
    eff = t[t["preset"] == "effdet"].iloc[0]
    assert eff["rank"] == 1 and bool(eff["pareto"])
    assert row(t[t["preset"] == "proxy"], "bifpn", 2)["rank"] == 1


def test_topologies_sharing_a_name_are_never_pooled():
    # two records of "fpn" at phi 0 whose spec differs (the built-in changed between runs): two rows, not a mean
    changed = [dict(make_record("fpn", 0, s, ap=0.6, gflops=1.0), spec_hash="0123456789abcdef") for s in (0, 1)]
    t = build_table(sweep() + changed)
    proxy = t[t["phi"] == 0]
    assert sorted(proxy["neck"]) == ["bifpn", "fpn@01234567", "fpn@spec-fpn", "pan"]
    assert row(t, "fpn@01234567", 0)["AP_mean"] == pytest.approx(0.6)
    assert row(t, "fpn@spec-fpn", 0)["AP_mean"] == pytest.approx(0.30)
    # the label follows the topology across phi, so each keeps its own curve; a neck with one topology keeps its name
    assert row(t, "fpn@spec-fpn", 1)["n_seeds"] == 2
    assert row(t, "bifpn", 1)["n_seeds"] == 2


def test_task_filter_and_seg():
    seg = make_record("fpn", 0, 0, task="seg")
    seg["metrics"] = {"mIoU": 0.6, "pixel_accuracy": 0.9}
    t = build_table(sweep() + [seg], task="seg")
    assert len(t) == 1 and t.iloc[0]["metric"] == "mIoU" and t.iloc[0]["score"] == pytest.approx(0.6)
    assert len(build_table(sweep() + [seg], task="det")) == 9


def test_failed_runs_listed_apart(table):
    failed = failed_runs(sweep())
    assert list(failed.columns) == ["task", "neck", "phi", "seed", "reason"]
    assert len(failed) == 1
    assert failed.iloc[0].to_dict() == {
        "task": "det",
        "neck": "fpn",
        "phi": 3,
        "seed": 0,
        "reason": "loss became nan at step 12",
    }
    assert 3 not in set(table["phi"])


@pytest.fixture()
def parts():
    """The board of :func:`sweep` (every neck's seeds offset alike: paired differences have sd 0)."""
    return compose(sweep(), setup=False)


# with 2 seeds, t_{0.975, 1} = 12.706: half-width = 12.706 * (0.01 * sqrt 2) / sqrt 2 = 0.127
CI = 12.706 * STD / math.sqrt(2)


def test_render_json(parts):
    doc = json.loads(render(parts, "json"))
    parts_ = {"equal_cost", "pareto_fronts", "equal_cost_fit", "schedules", "transfer", "published", "failed"}
    assert set(doc) == {"reference", "leaderboard", "groups", *parts_}
    assert len(doc["leaderboard"]) == 9 and len(doc["failed"]) == 1 and len(doc["pareto_fronts"]) == 27
    assert {"letters", "ci95", "budget"} <= set(doc["equal_cost"][0])
    assert len(doc["groups"]) == 3 and doc["reference"] == "fpn"
    top = doc["leaderboard"][0]
    assert top["neck"] == "bifpn" and top["rank"] == 1 and top["AP_mean"] == pytest.approx(0.42)
    assert top["score_ci95"] == pytest.approx(CI, rel=1e-4) and top["diff_mean"] == pytest.approx(0.02)
    assert top["phi_rank"] == 1 and top["letters"] == "a"


def test_render_csv(parts, tmp_path):
    text = render(parts, "csv", path=tmp_path / "board.csv")
    df = pd.read_csv(io.StringIO(text))
    assert len(df) == 9 and {"AP_mean", "AP_std", "AP_ci95", "n_seeds", "rank", "pareto"} <= set(df.columns)
    assert {"phi_rank", "diff_mean", "diff_ci95", "letters"} <= set(df.columns)
    assert len(pd.read_csv(tmp_path / "board.failed.csv")) == 1
    costs = pd.read_csv(tmp_path / "board.equal_cost.csv")
    assert {"axis", "budget", "neck", "value", "ci95", "letters"} <= set(costs.columns)
    assert len(pd.read_csv(tmp_path / "board.groups.csv")) == 3
    assert not (tmp_path / "board.setup.csv").exists()


def test_render_markdown(parts):
    text = render(parts, "md")
    lines = text.splitlines()
    assert "## task det · dataset synthetic · preset proxy" in text
    assert text.count("synthetic") == 1  # the group's shared settings once, as its heading
    header = lines.index("### phi 2") + 4
    assert lines[header].startswith("| rank | neck | tied | pooled | seeds | AP ± 95 % CI | Δ AP vs fpn ± 95 % CI |")
    assert set(lines[header + 1]) <= set("|- ")
    assert lines[header + 2].startswith(f"| 1 | bifpn | a | a | 2 | 0.420 ± {CI:.3f} | +0.020 ± 0.000 |")
    # the neck x phi view: equal seed offsets make every paired difference exact, so every pair is resolved
    assert "| fpn | 0.300 ± 0.127 b | 0.350 ± 0.127 c | 0.400 ± 0.127 b |" in text
    assert "## Failed runs" in text and "loss became nan" in text
    empty = compose([r for r in sweep() if r["status"] == "ok"], setup=False)
    assert "## Failed runs\n\nNone.\n" in render(empty, "md")  # no empty table


def test_markdown_links_figures_relative_to_its_own_folder(parts, tmp_path):
    figures = plots.write_all(parts.table, tmp_path / "figs")
    text = render(parts, "md", path=tmp_path / "board" / "LEADERBOARD.md", figures=figures)
    assert "## Figures" in text and "![accuracy_vs_gflops](../figs/accuracy_vs_gflops.png)" in text
    assert "## Figures" not in render(parts, "md")


def test_render_rich_table(parts):
    text = render(parts, "table")
    assert "bifpn" in text and "Failed runs" in text and "±" in text and "Rank stability" in text


def test_render_html_embeds_figures(parts, tmp_path):
    path = tmp_path / "board.html"
    text = render(parts, "html", path=path)
    assert path.read_text() == text
    assert '<img src="data:image/png;base64,' in text
    assert f"0.420 ± {CI:.3f}" in text and "white-space:nowrap" in text
    # neck x phi, 3 rankings, equal GFLOPs / parameters / latency, Pareto fronts, transfer, published
    # comparisons, failed runs: all sortable
    assert text.count('<table class="sortable">') == 11 and "<script>" in text and "http" not in text


def test_setup_table_says_how_the_runs_were_made_and_shows_mixtures(parts):
    recs = sweep()
    for i, r in enumerate(recs):
        r["config"] = {"train": {"epochs": 8, "batch_size": 16, "optimizer": "adamw", "lr": 0.006}}
        r["dataset"].update(n_train=2048, n_val=512)
        r["environment"] = {
            "device": "cpu",
            "torch_threads": 2,
            "cpu_count": 2,
            "torch": "2.14.1",
            "timm": "1.0.31",
            "git_commit": "a" * 40 if i else "b" * 40 + "+dirty",
        }
        if i == 1:  # written by an installed copy: no commit, its version
            r["environment"].update(git_commit=None, archbench="0.1.0")
        r["written_at"] = f"2026-11-{20 + i % 3:02d}T10:00:00+00:00"
    (row,) = setup_table(recs).to_dict("records")
    assert row == {
        "task": "det",
        "dataset": "synthetic",
        "preset": "proxy",
        "terms": "native",
        "epochs": 2,
        "device": "cpu",
        "amp": "off",
        "runs": 19,
        "training": "8 epochs, batch 16, adamw lr 0.006",
        "data": "2048 train / 512 val images, fingerprint abc123",
        "environment": "cpu, 2 threads on 2 cores, torch 2.14.1, timm 1.0.31",
        "settings": "?",
        "code": "aaaaaaaaaaaa; archbench 0.1.0 (installed); bbbbbbbbbbbb (uncommitted changes)",
        "written": "2026-11-20 .. 2026-11-22",
        "mixed": "code versions",
    }
    (bare,) = setup_table(sweep()).to_dict("records")  # records that do not say: '?', never a guess
    assert bare["runs"] == 19 and {bare[k] for k in ("training", "data", "environment", "code", "written")} == {"?"}
    assert setup_table(sweep(), task="seg").empty
    text = render(compose(recs), "md")
    assert "## How the runs were made" in text and "bbbbbbbbbbbb (uncommitted changes)" in text
    assert "How the runs were made" not in render(parts, "md")


def test_setup_table_condenses_a_board_committed_record_by_record():
    recs = sweep()
    for i, r in enumerate(recs):  # commit c{i // 5}, its first record written on day 10 + i // 5
        r["environment"] = {"git_commit": f"{i // 5}" * 40 + ("+dirty" if i == 18 else "")}
        r["written_at"] = f"2026-11-{10 + i // 5:02d}T{i % 5:02d}:00:00+00:00"
    commits = clean_commits(recs)
    assert commits == ["0" * 40, "1" * 40, "2" * 40, "3" * 40]  # 3's dirty record (i = 18) is not counted
    (row,) = setup_table(recs).to_dict("records")
    assert row["code"] == "4 commits, 000000000000 .. 333333333333; 333333333333 (uncommitted changes)"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_changes_outside_the_records_are_found_by_git(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "results").mkdir()
    commits = []
    for name, text in [
        ("code.py", "a = 1\n"),
        ("results/r1.json", "{}"),
        ("code.py", "a = 2\n"),
        ("code.py", "a = 1\n"),
    ]:
        (tmp_path / name).write_text(text)
        git(tmp_path, "add", name)
        git(tmp_path, "commit", "-q", "-m", name)
        commits.append(git(tmp_path, "rev-parse", "HEAD"))
    assert changes_outside(commits[:2], tmp_path) == {commits[1]: []}  # only a record was committed
    # a change undone later is still seen at the commit whose runs it touched
    assert changes_outside(commits, tmp_path) == {commits[1]: [], commits[2]: ["code.py"], commits[3]: []}
    assert changes_outside([commits[0], "f" * 40], tmp_path) is None  # a commit git does not have
    assert changes_outside(commits[:1], tmp_path) == {}


def test_render_unknown_format(parts):
    with pytest.raises(UserError):
        render(parts, "xlsx")


def test_plots_written(table, tmp_path):
    paths = plots.write_all(table, tmp_path / "figs")
    assert [p.name for p in paths] == plots.figure_names(table)  # the names the board test relies on
    names = sorted(p.name for p in paths)
    assert names == ["accuracy_vs_gflops.png", "accuracy_vs_latency.png", "accuracy_vs_params.png", "size_ap.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_results_folder(tmp_path):
    with pytest.raises(UserError, match=r"no run records under .*runs; run `archbench run` first"):
        require_records(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(UserError, match="no run records"):
        require_records(tmp_path)


def test_records_round_trip(tmp_path):
    for rec in sweep():
        RunRecord.from_dict({k: v for k, v in rec.items() if k != "schema_version"}).save(tmp_path)
    records = require_records(tmp_path)
    assert len(build_table(records)) == 9 and len(failed_runs(records)) == 1
    loaded = load_records(tmp_path)  # RunRecord objects: the board takes them as well as their dicts
    assert build_table(loaded).equals(build_table(records)) and failed_runs(loaded).equals(failed_runs(records))
    assert setup_table(loaded).equals(setup_table(records))
    with pytest.raises(UserError, match="'seg' run records"):
        require_records(tmp_path, task="seg")


def test_cli_leaderboard(tmp_path):
    for rec in sweep():
        RunRecord.from_dict(rec).save(tmp_path)
    res = run_cli("leaderboard", "--results", str(tmp_path), "--format", "json")
    assert res.returncode == 0, res.stderr
    board = json.loads(res.stdout)
    assert len(board["leaderboard"]) == 9 and board["failed"]
    assert [(row["preset"], row["runs"]) for row in board["setup"]] == [("proxy", 19)]
    html = tmp_path / "board.html"
    res = run_cli(
        "leaderboard", "--results", str(tmp_path), "--format", "html", "-o", str(html), "--plot", str(tmp_path / "fig")
    )
    assert res.returncode == 0 and "data:image/png;base64," in html.read_text()
    assert (tmp_path / "fig" / "accuracy_vs_gflops.png").is_file()
    empty = run_cli("leaderboard", "--results", str(tmp_path / "none"))
    assert empty.returncode == 2 and "no run records" in empty.stderr


def test_checked_in_board_is_derived_from_its_records():
    """results/board/LEADERBOARD.md is exactly what `archbench leaderboard` makes of results/board/runs/:
    nobody edited a number by hand, and no record was added without regenerating the board."""
    board = Path(__file__).resolve().parent.parent / "results" / "board"
    composed = compose(require_records(board, task="det"), "det", sittings=read_sittings(board))
    names = plots.figure_names(composed.table)
    figures = [board / "figures" / name for name in names]
    assert all(f.is_file() for f in figures), "a figure is missing: run scripts/make_leaderboard.py --from-records"
    expected = render_md(composed, figures=[f"figures/{name}" for name in names])
    assert (board / "LEADERBOARD.md").read_text() == expected


def test_checked_in_board_ran_one_version_of_the_code_per_group():
    """Each comparison group's records were committed one by one as they finished, so they name many commits;
    within a group those commits may differ from the first only in results/ (the records themselves). Groups
    (e.g. the quick 8-epoch tier and a longer schedule trained later) may come from different versions."""
    root = Path(__file__).resolve().parent.parent
    records = require_records(root / "results" / "board", task="det")
    groups: dict[tuple, list] = {}
    for record in records:
        groups.setdefault(tuple(group_of(record).values()), []).append(record)
    for key, members in groups.items():
        changed = changes_outside(clean_commits(members), root)
        if changed is None:
            pytest.skip("git history of the board's commits is not available (shallow clone?)")
        assert {c[:12]: paths for c, paths in changed.items() if paths} == {}, key


def test_cpu_and_gpu_runs_and_autocast_runs_are_separate_groups():
    def record(seed: int, device: str = "cpu", amp: Any = False, ap: float = 0.3) -> dict[str, Any]:
        rec = make_record("fpn", 0, seed, ap=ap)
        rec["config"] = {"device": device, "train": {"amp": amp}}
        return rec

    records = [record(0), record(1), record(0, "cuda", ap=0.5), record(0, "cuda", "fp16", ap=0.6)]
    assert [(group_of(r)["device"], group_of(r)["amp"]) for r in records[1:]] == [
        ("cpu", "off"),
        ("cuda", "off"),
        ("cuda", "fp16"),
    ]
    assert group_of({"config": {"train": {"amp": True}}})["amp"] == "bf16"  # a record from before the modes
    table = build_table(records)
    assert sorted(zip(table["device"], table["amp"], table["n_seeds"])) == [
        ("cpu", "off", 2),
        ("cuda", "fp16", 1),
        ("cuda", "off", 1),
    ]
