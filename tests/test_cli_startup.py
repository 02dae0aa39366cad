"""The command line starts light: which modules each light command loads, and no dependency's deprecation warnings.

Start-up is checked by what is imported, not by timing: a fresh interpreter runs the light commands one after
the other through ``archbench.cli.main`` and reports the heavy packages loaded after each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import typer

from archbench.cli import app
from archbench.data import synthetic
from archbench.quiet import hide_dependency_deprecations
from archbench.spec import builtin_spec, dump_yaml

from helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
#: The training stack and the plotting and table libraries: none loads before a command needs it.
HEAVY = ("torch", "torchvision", "timm", "fvcore", "optuna", "pandas", "matplotlib")
#: The checked-in board, for a leaderboard that reads real records.
BOARD = ROOT / "results" / "board"

#: Runs each argv of ``argv[2]`` (a JSON list) through ``main`` in this one process and writes, after each,
#: which of the ``argv[1]`` packages are loaded, to the file ``argv[3]``.
PROBE = """
import json, sys
from unittest.mock import patch
from archbench.cli import main
heavy, commands, report = set(json.loads(sys.argv[1])), json.loads(sys.argv[2]), []
for argv in commands:
    code = 0
    with patch.object(sys, "argv", ["archbench", *argv]):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    report.append({"argv": argv, "code": code, "loaded": sorted({m.split(".")[0] for m in sys.modules} & heavy)})
with open(sys.argv[3], "w") as f:
    json.dump(report, f)
"""


def _command_paths(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and command group under ``group`` (a click group), as the words that name it."""
    paths = []
    for name, command in getattr(group, "commands", {}).items():
        paths.append((*prefix, name))
        paths += _command_paths(command, (*prefix, name))
    return paths


HELP_PAGES = [["--help"]] + [[*path, "--help"] for path in _command_paths(typer.main.get_command(app))]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict[str, dict]:
    """argv (joined by spaces) -> {"code", "loaded"}: the probe's report over the light commands, the
    leaderboard last (it alone may load pandas)."""
    tmp = tmp_path_factory.mktemp("startup")
    spec = tmp / "fpn.yaml"
    spec.write_text(dump_yaml(builtin_spec("fpn")))
    commands = [
        *HELP_PAGES,
        ["--version"],
        ["specs", "list"],
        ["specs", "show", "bifpn"],
        ["specs", "validate", str(spec)],
        ["leaderboard", "--results", str(BOARD)],
    ]
    report_file = tmp / "report.json"
    res = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), json.dumps(commands), str(report_file)],
        capture_output=True,
        text=True,
        cwd=tmp,
    )
    assert res.returncode == 0, res.stderr
    return {" ".join(entry["argv"]): entry for entry in json.loads(report_file.read_text())}


def test_every_command_is_probed():
    names = {" ".join(page[:-1]) for page in HELP_PAGES}
    assert {"", "run", "search", "profile", "eval", "predict", "leaderboard", "specs", "specs draw"} <= names


@pytest.mark.parametrize("argv", [" ".join(page) for page in HELP_PAGES])
def test_help_pages_load_no_heavy_package(loaded, argv):
    assert loaded[argv] == {"argv": argv.split(), "code": 0, "loaded": []}


@pytest.mark.parametrize("argv", ["--version", "specs list", "specs show bifpn"])
def test_light_commands_load_no_heavy_package(loaded, argv):
    assert loaded[argv]["code"] == 0
    assert loaded[argv]["loaded"] == []


def test_validating_a_spec_file_loads_no_heavy_package(loaded):
    (entry,) = [v for k, v in loaded.items() if k.startswith("specs validate ") and k.endswith("fpn.yaml")]
    assert entry["code"] == 0
    assert entry["loaded"] == []


def test_the_leaderboard_loads_pandas_but_no_training_stack_and_no_matplotlib(loaded):
    entry = loaded[f"leaderboard --results {BOARD}"]
    assert entry["code"] == 0
    assert entry["loaded"] == ["pandas"]


def test_dependency_deprecations_are_hidden_and_archbench_ones_are_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hide_dependency_deprecations()
        for module in ("torch.jit._script", "timm.layers", "torchvision", "optuna.study", "archbench.spec"):
            for category in (FutureWarning, DeprecationWarning):
                warnings.warn_explicit(f"{module} is old", category, "x.py", 1, module=module)
        warnings.warn_explicit("a user warning stays", UserWarning, "x.py", 1, module="timm.layers")
    assert sorted((str(w.message), w.category.__name__) for w in caught) == [
        ("a user warning stays", "UserWarning"),
        ("archbench.spec is old", "DeprecationWarning"),
        ("archbench.spec is old", "FutureWarning"),
    ]


def test_main_gives_an_in_process_caller_its_warning_filters_back():
    before = list(warnings.filters)
    assert run_cli("--version").returncode == 0
    assert warnings.filters == before


def test_a_command_that_imports_torch_prints_no_deprecation_warning(tmp_path):
    """``python -m archbench`` (what torchrun starts) goes through ``main``: profiling imports torch, timm,
    torchvision and fvcore, and stderr stays free of their warnings."""
    res = subprocess.run(
        [sys.executable, "-m", "archbench", "profile", "--neck", "fpn", "--phi", "0", "--preset", "proxy"]
        + ["--format", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["neck"] == "fpn"
    assert "Warning" not in res.stderr, res.stderr


def test_runs_side_by_side_print_no_deprecation_warning(tmp_path):
    """``archbench run --jobs 2`` spawns a process per run; each imports torch after hiding what the CLI hides."""
    data = tmp_path / "data"
    synthetic.generate(data, n_train=16, n_val=8, size=64, workers=1)
    res = subprocess.run(
        [sys.executable, "-m", "archbench", "run", "--neck", "fpn", "--phi", "0", "--seeds", "0,1", "--jobs", "2"]
        + ["--epochs", "1", "--batch-size", "8", "--data", f"coco:{data}", "--results", str(tmp_path / "res")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert len(list((tmp_path / "res" / "runs").glob("*.json"))) == 2
    assert "Warning" not in res.stderr, res.stderr
