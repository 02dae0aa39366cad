"""The board's figures (archbench.board.plots) and neck styles, read back from the drawn Axes (no pixels).

Fabricated records, no torch: each (neck, phi) has a mean AP and GFLOPs from ``POINTS`` and seeds that add
``SPREAD[neck]`` x (-1, 0, +1), so necks have different 95 % intervals.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from archbench.board import plots
from archbench.board.aggregate import GROUP_KEYS, build_table
from archbench.board.neck_styles import BUILTIN_STYLES, EXTRA_COLOURS, N_EXTRA, Style, styles
from archbench.spec import builtin_names

#: (neck, phi) -> (GFLOPs, mean AP). On GFLOPs the front of the means is fpn φ0, bifpn φ0, fpn φ1.
POINTS: dict[tuple[str, int], tuple[float, float]] = {
    ("fpn", 0): (1.0, 0.30),
    ("fpn", 1): (2.0, 0.35),
    ("bifpn", 0): (1.5, 0.33),
    ("bifpn", 1): (3.0, 0.34),
    ("my_neck", 0): (1.2, 0.28),
}
SPREAD = {"fpn": 0.01, "bifpn": 0.03, "my_neck": 0.02}


def record(neck: str, phi: int, seed: int, *, epochs: int = 8, terms: str = "efficientdet", gain: float = 0.0):
    """One ok record of ``POINTS[neck, phi]`` at ``seed`` (0, 1, 2), its AP raised by ``gain``."""
    gflops, ap = POINTS[neck, phi]
    ap += gain + SPREAD[neck] * (seed - 1)
    return {
        "status": "ok",
        "task": "det",
        "dataset": {"name": "synthetic"},
        "preset": "proxy",
        "config": {"terms": terms},
        "epochs": epochs,
        "neck": neck,
        "spec_hash": f"hash-{neck}",
        "phi": phi,
        "seed": seed,
        "metrics": {"AP": ap, "APs": ap - 0.1, "APm": ap, "APl": ap + 0.1},
        "costs": {"gflops": gflops, "params_total": gflops * 1e6, "latency_ms": gflops * 5},
        "timing": {"images_per_s": 100.0},
    }


def records(**kwargs: Any) -> list[dict[str, Any]]:
    return [record(neck, phi, seed, **kwargs) for (neck, phi) in POINTS for seed in (0, 1, 2)]


@pytest.fixture
def board() -> pd.DataFrame:
    """Three groups: equal terms at 8 and 16 epochs (every neck, AP + 0.1 at 16), native terms at 8 epochs."""
    return build_table(records() + records(epochs=16, gain=0.1) + records(terms="native"))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def bars(container: ErrorbarContainer) -> list[float]:
    """Half-length of each drawn error bar of ``container``, in its points' order (NaN where none is drawn)."""
    segments = container.lines[2][0].get_segments()
    return [abs(s[1, 1] - s[0, 1]) / 2 if len(s) else np.nan for s in segments]


def neck_lines(ax: plt.Axes) -> dict[str, ErrorbarContainer]:
    return {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}


# ---------------------------------------------------------------------------------------------- styles


def test_builtin_necks_have_one_colour_and_one_marker_each():
    assert set(BUILTIN_STYLES) == set(builtin_names())
    assert len({s.colour for s in BUILTIN_STYLES.values()}) == len(BUILTIN_STYLES) == 13
    assert len({s.marker for s in BUILTIN_STYLES.values()}) == 13
    assert not set(EXTRA_COLOURS) & {s.colour for s in BUILTIN_STYLES.values()}


def test_styles_are_fixed_by_name():
    # a built-in's style never depends on the other necks of the board
    assert styles(["fpn"])["fpn"] == styles(builtin_names() + ["x", "y"])["fpn"] == BUILTIN_STYLES["fpn"]
    # another neck's comes from its name alone (a salted hash would change it between processes) ...
    assert styles(["my_neck"])["my_neck"] == Style("#17becf", "D")
    assert styles(["user_neck", *builtin_names()])["user_neck"] == Style("#e377c2", "^")
    # ... unless an extra neck sorted before it holds its slot: then it takes the next free one
    mine = styles(["my_neck"])["my_neck"]
    clash = next(f"n{i}" for i in range(1000) if styles([f"n{i}"])[f"n{i}"] == mine)
    both = styles([clash, "my_neck"])
    assert both[clash] != both["my_neck"] and mine in both.values()


def test_extra_necks_get_distinct_styles_until_the_slots_run_out():
    names = [f"user_{i}" for i in range(N_EXTRA)]
    got = styles(names)
    assert len(set(got.values())) == N_EXTRA
    assert not set(got.values()) & set(BUILTIN_STYLES.values())
    assert len(set(styles([*names, "one_more"]).values())) == N_EXTRA  # the 43rd shares a style


# ---------------------------------------------------------------------------------------------- accuracy vs cost


def test_each_panel_title_names_its_whole_group(board):
    fig = plots.accuracy_vs(board, "gflops")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3 and len(set(titles)) == 3
    for title, (key, _) in zip(titles, board.groupby(GROUP_KEYS, sort=True)):
        assert all(f"{name} {value}" in title for name, value in zip(GROUP_KEYS, key)), title
    assert "terms native · epochs 8" in titles[2] and "terms efficientdet · epochs 16" in titles[1]


def test_error_bars_are_the_tables_95_percent_intervals(board):
    fig = plots.accuracy_vs(board, "latency_ms")
    ax = fig.axes[0]
    assert "95 % CI" in ax.get_ylabel()
    group = board[(board["terms"] == "efficientdet") & (board["epochs"] == 8)]
    lines = neck_lines(ax)
    assert set(lines) == {"fpn", "bifpn", "my_neck"}
    for neck, container in lines.items():
        rows = group[group["neck"] == neck].sort_values("latency_ms")
        np.testing.assert_allclose(bars(container), rows["score_ci95"])
        assert not np.allclose(bars(container), rows["score_std"])
        np.testing.assert_allclose(container.lines[0].get_xdata(), rows["latency_ms"])


def test_no_bar_for_a_single_seed():
    table = build_table([record("fpn", 0, 1), record("fpn", 1, 0), record("fpn", 1, 2)])
    (container,) = neck_lines(plots.accuracy_vs(table).axes[0]).values()
    got = bars(container)
    # phi 1: AP 0.34 and 0.36, sd 0.01 x sqrt(2): t_{0.975, 1} x sd / sqrt(2) = 12.706 x 0.01
    assert np.isnan(got[0]) and got[1] == pytest.approx(12.706 * 0.01, rel=1e-4)


def test_a_neck_has_the_same_colour_and_marker_in_every_figure(board):
    board16 = board[board["epochs"] == 16].copy()  # the 16-epoch group alone: another board
    board16["neck"] = board16["neck"].replace({"bifpn": "hda"})  # with another built-in
    figures = [plots.accuracy_vs(board, "gflops"), plots.accuracy_vs(board16, "params_total")]
    figures.append(plots.learning_curves(board))
    seen: dict[str, set[tuple[str, str]]] = {}
    for ax in (ax for fig in figures for ax in fig.axes):
        for neck, container in neck_lines(ax).items():
            seen.setdefault(neck, set()).add((container.lines[0].get_color(), container.lines[0].get_marker()))
    assert set(seen) == {"fpn", "bifpn", "hda", "my_neck"}
    assert all(len(pairs) == 1 for pairs in seen.values())
    for neck in ("fpn", "bifpn", "hda"):
        assert seen[neck] == {(BUILTIN_STYLES[neck].colour, BUILTIN_STYLES[neck].marker)}
    assert len({next(iter(pairs)) for pairs in seen.values()}) == 4


# ---------------------------------------------------------------------------------------------- Pareto front


def fronts_frame(board: pd.DataFrame) -> pd.DataFrame:
    """A frame shaped like ``equal_cost.pareto_frequency``'s: on GFLOPs the frequencies of ``GFLOPS_FREQ``,
    on parameters 0.5 everywhere (must not show on the GFLOPs figure)."""
    rows = board[[*GROUP_KEYS, "neck", "phi"]]
    on_gflops = rows.assign(axis="gflops", front_freq=[GFLOPS_FREQ[n, p] for n, p in zip(rows["neck"], rows["phi"])])
    return pd.concat([on_gflops, rows.assign(axis="params_total", front_freq=0.5)])


GFLOPS_FREQ = {("fpn", 0): 1.0, ("bifpn", 0): 0.75, ("fpn", 1): 0.9, ("bifpn", 1): 0.2, ("my_neck", 0): 0.01}


def test_front_and_its_frequencies_are_drawn_from_the_frame(board):
    ax = plots.accuracy_vs(board, "gflops", fronts=fronts_frame(board)).axes[0]
    (step,) = [line for line in ax.get_lines() if line.get_label() == "front of the means"]
    assert step.get_drawstyle() == "steps-post"
    np.testing.assert_allclose(step.get_xdata(), [1.0, 1.5, 2.0])
    np.testing.assert_allclose(step.get_ydata(), [0.30, 0.33, 0.35])
    labels = sorted(t.get_text() for t in ax.texts if t.get_text().endswith("%"))
    assert labels == ["100%", "20%", "75%", "90%"]  # my_neck's 1 % is below MIN_FREQ
    (rings,) = ax.collections[-1:]
    np.testing.assert_allclose(sorted(rings.get_sizes()), np.array([0.2, 0.75, 0.9, 1.0]) * plots.RING_AREA)


def test_no_front_without_the_frame(board):
    for ax in plots.accuracy_vs(board, "gflops").axes:
        assert not [line for line in ax.get_lines() if "front" in line.get_label()]
        assert not [t for t in ax.texts if t.get_text().endswith("%")]


def test_front_frame_must_have_its_columns(board):
    with pytest.raises(ValueError, match="front_freq"):
        plots.accuracy_vs(board, fronts=fronts_frame(board).drop(columns="front_freq"))


# ---------------------------------------------------------------------------------------------- learning curves


def test_learning_curves_are_planned_only_with_two_schedules(board):
    assert "learning_curves.png" in plots.figure_names(board)
    one_schedule = board[board["epochs"] == 8]
    assert "learning_curves.png" not in plots.figure_names(one_schedule)
    # two schedules, but in groups that differ in terms too: no curve joins them
    apart = board[((board["epochs"] == 8) & (board["terms"] == "native")) | (board["epochs"] == 16)]
    assert plots.learning_panels(apart) == [] and "learning_curves.png" not in plots.figure_names(apart)
    with pytest.raises(ValueError):
        plots.learning_curves(one_schedule)


def test_learning_curves_one_panel_per_phi_with_the_necks_at_two_schedules(board):
    # my_neck only at 8 epochs: no curve; phi 1 has fpn and bifpn at both schedules
    table = board[(board["neck"] != "my_neck") | (board["epochs"] == 8)]
    fig = plots.learning_curves(table)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == 2 and ["φ0" in axes[0].get_title(), "φ1" in axes[1].get_title()] == [True, True]
    assert "terms efficientdet" in axes[0].get_title() and "epochs" not in axes[0].get_title()
    for ax, phi in zip(axes, (0, 1)):
        assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
        lines = neck_lines(ax)
        assert set(lines) == {"fpn", "bifpn"}
        for neck, container in lines.items():
            rows = table[(table["neck"] == neck) & (table["phi"] == phi) & (table["terms"] == "efficientdet")]
            rows = rows.sort_values("epochs")
            np.testing.assert_allclose(container.lines[0].get_ydata(), rows["score"])
            np.testing.assert_allclose(bars(container), rows["score_ci95"])
            xs = container.lines[0].get_xdata()  # the schedules, each neck dodged by under 5 %
            np.testing.assert_allclose(xs, rows["epochs"], rtol=0.05)


def test_write_all_writes_the_planned_figures(board, tmp_path):
    paths = plots.write_all(board, tmp_path, fronts=fronts_frame(board))
    assert [p.name for p in paths] == plots.figure_names(board)
    assert {p.name for p in paths} == {
        "accuracy_vs_gflops.png",
        "accuracy_vs_params.png",
        "accuracy_vs_latency.png",
        "learning_curves.png",
        "size_ap.png",
    }
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
