"""How the runs on a board were made: training schedule, data, environment, code and dates per group.

A board mixing machines, data sets or code versions says so in ``setup_table``. A board trained by
``scripts/make_leaderboard.py --commit`` comes from many commits, since each record is committed as it is
written; ``changes_outside`` asks git whether those commits differ in anything but the records.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from archbench.board.aggregate import GROUP_KEYS, Record, as_dict, group_of

SETUP_COLUMNS = GROUP_KEYS + ["runs", "training", "data", "environment", "settings", "code", "written", "mixed"]


def _code(env: Mapping[str, Any]) -> str | None:
    """The checkout's commit a run came from, else the installed archbench version (older records: neither)."""
    commit = env.get("git_commit") or ""
    if commit:
        return commit[:12] + (" (uncommitted changes)" if commit.endswith("+dirty") else "")
    return f"archbench {env['archbench']} (installed)" if env.get("archbench") else None


def _run_setup(record: Mapping[str, Any]) -> dict[str, Any]:
    """How one run was made, as short texts (None where the record does not say)."""
    config = record.get("config") or {}
    train = config.get("train") or {}
    dataset = record.get("dataset") or {}
    env = record.get("environment") or {}
    side_by_side = f" x {env['jobs']} runs side by side (--jobs)" if env.get("jobs", 1) > 1 else ""
    return {
        **group_of(record),
        "training": (
            f"{train['epochs']} epochs, batch {train['batch_size']}, {train['optimizer']} lr {train['lr']:g}"
            + (", per-part init (paired seeds)" if config.get("init") == "per_part" else "")
            if {"epochs", "batch_size", "optimizer", "lr"} <= set(train)
            else None
        ),
        "data": (
            f"{dataset['n_train']} train / {dataset['n_val']} val images, fingerprint "
            f"{str(dataset.get('fingerprint', '?'))[:12]}"
            if {"n_train", "n_val"} <= set(dataset)
            else None
        ),
        "environment": (
            f"{env.get('device', '?')}{_gpu(env)}, {env.get('torch_threads', '?')} threads{side_by_side} on "
            f"{env.get('cpu_count', '?')} cores{_cpu(env)}, torch {env.get('torch', '?')}, timm {env.get('timm', '?')}"
            if env
            else None
        ),
        "cpu": env.get("cpu_capability"),
        "cpu_model": env.get("cpu_model"),
        "settings": ", ".join(f"{k}={v}" for k, v in sorted((env.get("settings") or {}).items())) or None,
        "threads": f"{env.get('torch_threads')} x {env.get('jobs', 1)}" if env else None,
        "code": _code(env),
        "written": str(record.get("written_at") or "")[:10] or None,
    }


def _cpu(env: Mapping[str, Any]) -> str:
    """`` (model, capability)`` of the CPU where the record names them (records before issue 24 do not)."""
    known = [str(env[k]) for k in ("cpu_model", "cpu_capability") if env.get(k)]
    return f" ({', '.join(known)})" if known else ""


def _gpu(env: Mapping[str, Any]) -> str:
    """`` <GPU name>, driver <version>`` where the run used a GPU."""
    if not env.get("gpu"):
        return ""
    return f" {env['gpu']}" + (f", driver {env['gpu_driver']}" if env.get("gpu_driver") else "")


#: What may vary inside one group and must then be said: label -> setup column (code versions: see :func:`_mixed`).
#: CPU models count apart from kinds: an Intel Xeon and an AMD EPYC, both AVX-512, train the same configuration to
#: different AP (docs/board.md, How the runs were made).
MIXABLE = {"CPU kinds": "cpu", "CPU models": "cpu_model", "speed settings": "settings", "threads x jobs": "threads"}
#: The checkout whose history the records' commits are looked up in.
REPO = Path(__file__).resolve().parents[2]


def _code_mixed(codes: Iterable[str | None], commits: Sequence[str]) -> str | None:
    """'code versions' when the group's runs came from different code: versions other than clean commits (uncommitted
    changes, installed copies) beside anything else, or clean commits that differ outside ``results/`` (the board
    driver commits each record, so one code version spans many commits); '(unverified)' where git cannot tell."""
    known = {c for c in codes if c is not None}
    others = {c for c in known if c[:12] not in {commit[:12] for commit in commits}}
    if others and len(known) > 1:
        return "code versions"
    if len(commits) < 2:
        return None
    changed = changes_outside(commits, REPO)
    if changed is None:
        return "code versions (unverified: git cannot compare their commits)"
    return "code versions" if any(changed.values()) else None


def _mixed(group: pd.DataFrame, commits: Sequence[str]) -> str:
    """Which of CPU kinds, CPU models, code versions, speed settings and threads x jobs take more than one known
    value in ``group``; 'none' when all agree."""
    labels = [label for label, column in MIXABLE.items() if len({v for v in group[column] if v is not None}) > 1]
    code = _code_mixed(group["code"], commits)
    return ", ".join([*labels, *([code] if code else [])]) or "none"


def clean_commits(records: Iterable[Record]) -> list[str]:
    """The commits (full hashes) that records without uncommitted changes came from, in the order of
    each commit's first record (by ``written_at``)."""
    first: dict[str, str] = {}
    for record in map(as_dict, records):
        commit = (record.get("environment") or {}).get("git_commit") or ""
        if commit and not commit.endswith("+dirty"):
            written = str(record.get("written_at") or "")
            first[commit] = min(first.get(commit, written), written)
    return sorted(first, key=lambda c: (first[c], c))


def _code_versions(codes: Iterable[str | None], commits: Sequence[str]) -> str:
    """The code column of one group: one commit as itself, several as 'N commits, first .. last', then the
    other versions (uncommitted changes, installed copies) one by one."""
    if len(commits) < 2:
        return _distinct(codes)
    shown = {c[:12] for c in commits}
    others = [c for c in codes if c is not None and c not in shown]
    return "; ".join([f"{len(commits)} commits, {commits[0][:12]} .. {commits[-1][:12]}", *sorted(set(others))])


def changes_outside(commits: Sequence[str], repo: Path, kept: str = "results") -> dict[str, list[str]] | None:
    """The files each later commit changes against the first one, outside the folder ``kept``.

    Empty lists mean the runs of all ``commits`` ran the same code and only their records were committed
    in between. None when git cannot tell (no git, not a repository, or a commit missing as in a shallow
    clone). Every commit is compared with the first, so a change made and undone between two runs is seen.
    """
    changed: dict[str, list[str]] = {}
    for commit in commits[1:]:
        try:
            diff = subprocess.run(
                ["git", "diff", "--name-only", commits[0], commit, "--", ".", f":(exclude){kept}"],
                cwd=repo,
                capture_output=True,
                text=True,
                check=True,
            )
        except (OSError, subprocess.CalledProcessError):
            return None
        changed[commit] = diff.stdout.splitlines()
    return changed


def _distinct(values: Iterable[Any]) -> str:
    """The different values, sorted and joined with '; ' ('?' when none is known)."""
    return "; ".join(sorted({str(v) for v in values if v is not None})) or "?"


def setup_table(records: Iterable[Record], task: str | None = None) -> pd.DataFrame:
    """Per group (GROUP_KEYS): how many runs, and every distinct training schedule, data set, environment, speed
    settings and code version among them (several clean commits as a count and the first and last), the dates
    they were written (first .. last), and ``mixed``: which of CPU kinds, CPU models, code versions, speed settings
    and threads x jobs differ between the group's runs (:data:`MIXABLE`; 'none')."""
    chosen = [r for r in map(as_dict, records) if task is None or r.get("task") == task]
    columns = [c for c in SETUP_COLUMNS if c not in ("runs", "mixed")] + list(MIXABLE.values())
    rows = pd.DataFrame([_run_setup(r) for r in chosen], columns=list(dict.fromkeys(columns)))
    out = []
    for keys, group in rows.groupby(GROUP_KEYS, sort=True):
        commits = clean_commits(chosen[i] for i in group.index)
        dates = sorted(d for d in group["written"] if d)
        out.append(
            {
                **dict(zip(GROUP_KEYS, keys)),
                "runs": len(group),
                **{c: _distinct(group[c]) for c in ("training", "data", "environment", "settings")},
                "code": _code_versions(group["code"], commits),
                "written": f"{dates[0]} .. {dates[-1]}" if dates else "?",
                "mixed": _mixed(group, commits),
            }
        )
    return pd.DataFrame(out, columns=SETUP_COLUMNS)
