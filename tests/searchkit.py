"""Helpers of the search tests: a tiny generated data set, a tiny search space and the search command line."""

from __future__ import annotations

from pathlib import Path

import optuna

from archbench.data import synthetic
from archbench.search.storage import default_storage_url, open_storage

#: width 8 or 16, one neck cell, one head layer, 64 px: a trial trains in seconds
TINY_SPACE = """\
name: tiny
rule: compound
base: proxy
phis: {phis}
fixed: {{repeats_base: 1, repeats_step: 0, head_base: 1, resolution_base: 64, resolution_step: 0}}
search:
  width_base: {{low: 8, high: 16, step: 8}}
  width_growth: {{low: 1.1, high: 1.5}}
"""


def make_tiny_data(root: Path) -> str:
    """16 training and 8 validation images of 64 px; returns the ``coco:`` data reference."""
    synthetic.generate(root, n_train=16, n_val=8, size=64, workers=1)
    return f"coco:{root}"


def write_space(folder: Path, phis: str = "[0]") -> Path:
    path = folder / "tiny.yaml"
    path.write_text(TINY_SPACE.format(phis=phis))
    return path


def search_args(data: str, results: Path, space: Path, study: str, trials: int, *extra: str) -> list[str]:
    """``archbench search`` arguments for a tiny study (one epoch, batch 8, one thread unless ``extra`` says)."""
    return [
        "search",
        "--neck",
        "bifpn",
        "--space",
        str(space),
        "--study",
        study,
        "--trials",
        str(trials),
        "--data",
        data,
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--results",
        str(results),
        *(extra if "--epochs" in extra else ("--epochs", "1", *extra)),
    ]


def load(results: Path, study: str, storage: str | None = None) -> optuna.Study:
    """The study as stored (default: the SQLite file under ``results``)."""
    return optuna.load_study(
        study_name=study, storage=open_storage(storage or default_storage_url(results), create=False)
    )


#: three pyramids, top-down / skip / none paths: 27 points, several sharing a graph. References ``a`` and ``b``
#: differ only in F2, which reaches no output in either: one graph, F3 = top_down(F1)
TINY_TOPOLOGY = """\
name: tinypaths
graph: pyramid_paths
base: bifpn_sum
phis: [0]
pyramids: 3
paths: [top_down, skip, none]
references:
  a: {F1-F2: top_down, F1-F3: top_down, F2-F3: none}
  b: {F1-F2: skip, F1-F3: top_down, F2-F3: none}
"""


def write_topology_space(folder: Path) -> Path:
    path = folder / "tinypaths.yaml"
    path.write_text(TINY_TOPOLOGY)
    return path


def topology_args(data: str, results: Path, space: Path, study: str, trials: int, *extra: str) -> list[str]:
    """``archbench search`` arguments for a tiny topology study: the proxy preset at phi 0 on 8 images, one epoch
    of batch 8 (one step), one thread unless ``extra`` says."""
    base = search_args(data, results, space, study, trials, "--subset", "8", *extra)
    return [a for i, a in enumerate(base) if a != "--neck" and base[i - 1] != "--neck"]
