"""The package as users install it: ``--version``, and a wheel of the checkout that works from outside it.

The wheel test builds a wheel from a copy of the checkout, installs it with ``--no-deps`` into a fresh virtual
environment, and lends that environment this one's site-packages for the dependencies (torch, timm, optuna, ...)
through a ``.pth`` line. Python appends such a line's folder to ``sys.path`` without processing the ``.pth`` files
inside it, so the checkout's editable install stays inactive there: ``import archbench`` finds the wheel or
nothing. The commands then run from a folder outside the checkout: ``archbench --version``, ``archbench specs
list``, a one-trial search with a shipped scaling space and one with a shipped topology space on tiny data, and
a two-run sweep on a Ray instance started on this machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import optuna
import pytest

import archbench
from archbench.runs.records import load_records
from archbench.search.storage import default_storage_url, open_storage

from helpers import run_cli
from searchkit import make_tiny_data

REPO = Path(__file__).resolve().parents[1]
#: what building a wheel does not read: version control, environments, build leftovers (setuptools copies modules
#: into build/ and never removes them, so an old build/ could slip stale files in), and the checkout's results/
#: (only the top-level one: archbench/results/ is a package)
_NOT_BUILT_ANYWHERE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*cache")


def not_built(folder: str, names: list[str]) -> set[str]:
    ignored = set(_NOT_BUILT_ANYWHERE(folder, names))
    return ignored | ({"results"} if Path(folder) == REPO else set())


#: environment variables that would let the fresh environment see the checkout or this environment
LEAKY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(map(str, args))} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


def _can_build_wheels() -> bool:
    """setuptools with its own bdist_wheel (70.1 and later), or an older one with the ``wheel`` package."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    return importlib.util.find_spec("setuptools.command.bdist_wheel") is not None or (
        importlib.util.find_spec("wheel") is not None
    )


def test_the_package_list_names_every_package_folder_and_maps_the_search_spaces():
    """pyproject.toml lists the packages by hand (the mapped search_spaces/ rules out discovery): a new package
    folder missing from the list would be left out of every wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools_table = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "archbench").rglob("__init__.py")}
    assert set(setuptools_table["packages"]) == on_disk | {"archbench.search_spaces"}
    assert setuptools_table["package-dir"] == {"archbench.search_spaces": "search_spaces"}


def test_version_prints_the_package_version():
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout == f"archbench {archbench.__version__}\n"


@pytest.mark.skipif(not _can_build_wheels(), reason="building a wheel needs setuptools (and wheel before 70.1)")
def test_the_wheel_installs_into_a_fresh_venv_and_runs_a_search_from_outside_the_checkout(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1", PIP_NO_INPUT="1")
    shutil.copytree(REPO, tmp_path / "source", ignore=not_built)
    build = ("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", tmp_path / "source")
    _run(sys.executable, "-m", "pip", *build, cwd=tmp_path, env=env)
    (wheel,) = (tmp_path / "dist").glob("archbench-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".yaml")}
    assert shipped == {f"archbench/search_spaces/{p.name}" for p in (REPO / "search_spaces").glob("*.yaml")}

    # a user's project: its own git repository with a commit, which is not archbench's checkout
    project = tmp_path / "project"
    project.mkdir()
    assert REPO not in project.resolve().parents
    git = ("git", "-c", "user.name=t", "-c", "user.email=t@example.org")
    _run(*git, "init", "-q", cwd=project, env=env)
    _run(*git, "commit", "-q", "--allow-empty", "-m", "a user's project", cwd=project, env=env)

    venv = project / ".venv"
    _run(sys.executable, "-m", "venv", venv, cwd=project, env=env)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    _run(python, "-m", "pip", "install", "-q", "--no-deps", wheel, cwd=project, env=env)
    purelib_of = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = Path(_run(python, "-c", purelib_of, cwd=project, env=env).stdout.strip())
    (purelib / "archbench_test_dependencies.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"

    where = _run(
        python,
        "-c",
        "import json, importlib.metadata as m, archbench, archbench.search.spaces as s; "
        "print(json.dumps([archbench.__file__, str(s.SHIPPED_SPACES), archbench.__version__, m.version('archbench')]))",
        cwd=project,
        env=env,
    )
    module, spaces, version, metadata_version = json.loads(where.stdout)
    assert Path(module).parent == purelib / "archbench", f"archbench imported from {module}, not the wheel"
    assert Path(spaces) == purelib / "archbench/search_spaces"
    assert version == metadata_version == archbench.__version__

    assert _run("archbench", "--version", cwd=project, env=env).stdout == f"archbench {archbench.__version__}\n"
    specs = _run("archbench", "specs", "list", cwd=project, env=env).stdout
    assert all(f" {name} " in specs for name in ("fpn", "panet", "bifpn")), specs

    data = make_tiny_data(project / "data")
    tiny = "--phi 0 --trials 1 --epochs 1 --batch-size 8 --subset 8 --threads 1 --sampler-seed 0".split()
    search = _run(
        "archbench",
        "search",
        "--neck",
        "bifpn",
        "--space",
        "efficientdet_family",
        *tiny,
        "--data",
        data,
        cwd=project,
        env=env,
    )
    assert "1/1 finished in the study" in search.stderr, search.stderr
    results = project / "results"  # the default, under the working folder
    study = optuna.load_study(
        study_name="bifpn-efficientdet_family", storage=open_storage(default_storage_url(results), create=False)
    )
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] and study.metric_names == ["AP"]
    (record,) = load_records(results / "search" / "bifpn-efficientdet_family")
    assert record.ok and record.environment["archbench"] == archbench.__version__
    assert record.environment["git_commit"] is None  # the project's commit is not archbench's

    # a shipped topology space: its first trial trains the space's first reference graph, and the front exports it
    graphs = _run("archbench", "search", "--space", "opanas_paths", *tiny, "--data", data, cwd=project, env=env)
    assert "1/1 finished in the study" in graphs.stderr and "reference fpn" in graphs.stderr, graphs.stderr
    (exported,) = (results / "search" / "opanas_paths" / "front").glob("*.yaml")
    assert _run("archbench", "specs", "validate", exported, cwd=project, env=env).returncode == 0

    # a tiny sweep as tasks of a Ray instance started on this machine: the workers import archbench from the wheel
    tiny_sweep = "--neck fpn,bifpn --epochs 1 --batch-size 8 --subset 8 --threads 1 --executor ray".split()
    ray_sweep = _run("archbench", "run", *tiny_sweep, "--data", data, "--results", "ray", cwd=project, env=env)
    assert "2 run(s) recorded" in ray_sweep.stdout, ray_sweep.stderr
    ray_records = load_records(project / "ray")
    assert sorted(r.neck for r in ray_records) == ["bifpn", "fpn"]
    assert all(r.ok and r.extra["executor"]["name"] == "ray" for r in ray_records)
