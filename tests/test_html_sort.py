"""The HTML board's sortable tables, clicked in headless Chromium by scripts/check_html_sort.py.

The browser test needs a Chromium on PATH (Debian: ``apt-get install chromium``) and is skipped without one;
the checker's own rules are tested without a browser.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scriptkit import load_script

ROOT = Path(__file__).resolve().parents[1]


def clicked(before: list[str], first: list[str], second: list[str]) -> dict:
    """One clicked column as the page reports it (a one-column table)."""
    rows = {name: [[c] for c in cells] for name, cells in (("before", before), ("first", first), ("second", second))}
    return {"table": 0, "column": 0, "header": "x", **rows, "orders": ["asc", "desc"]}


def test_the_checker_wants_numbers_by_value_then_text_then_empty_in_both_directions():
    script = load_script("check_html_sort")
    cells = ["10", "", "-", "9", "+0.5 ± 0.1", "reference"]
    ascending = ["+0.5 ± 0.1", "9", "10", "-", "reference", ""]
    descending = ["10", "9", "+0.5 ± 0.1", "reference", "-", ""]
    assert script.check([clicked(cells, ascending, descending)]) == []
    lexicographic = clicked(cells, ["+0.5 ± 0.1", "10", "9", "-", "reference", ""], descending)
    assert script.check([lexicographic]) == [
        "table 0 column 0 ('x'): first click (ascending): rows 2 and 3: '10' before '9'"
    ]
    text_first = clicked(cells, ascending, ["reference", "-", "10", "9", "+0.5 ± 0.1", ""])
    assert "second click (descending): rows 2 and 3: '-' before '10'" in script.check([text_first])[0]
    lost_row = clicked(cells, ascending[:-1] + ["9"], descending)
    assert "the first click changed the rows" in script.check([lost_row])[0]


def test_the_checked_in_boards_tables_sort_in_chromium(tmp_path):
    script = load_script("check_html_sort")
    browser = script.find_browser()
    if browser is None:
        pytest.skip(f"no Chromium on PATH (tried {', '.join(script.BROWSERS)}); Debian: apt-get install chromium")
    page = tmp_path / "board.html"
    page.write_text(script.with_clicks(script.board_page(ROOT / "results" / "board")))
    columns = script.clicked_columns(script.clicked_dom(browser, page))
    assert script.check(columns) == []
    by_header = {(c["table"], c["header"]): c for c in columns}
    rank = by_header[(1, "rank")]  # the phi 0 leaderboard: 13 necks
    assert [row[0] for row in rank["first"]] == [str(k) for k in range(1, 14)]  # 10 after 9, not after 1
    assert [row[0] for row in rank["second"]] == [str(k) for k in range(13, 0, -1)]
    published = next(c for c in columns if c["header"] == "COCO AP %")
    ap = published["column"]
    assert published["first"][-1][ap] == published["second"][-1][ap] == "-"  # a missing value is last both ways
