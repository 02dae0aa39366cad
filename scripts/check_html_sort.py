"""Click every sortable header of the HTML leaderboard in headless Chromium and check the order of the rows.

    python scripts/check_html_sort.py                    # the board of results/board, rendered now
    python scripts/check_html_sort.py --html board.html  # a page written by archbench leaderboard --format html

The page gets one more inline script, run on load after its own: it clicks each header of each table twice and
writes every table's rows, before and after each click, into the page as JSON; ``chromium --headless
--dump-dom`` prints the page as it then stands (no network, no websocket). The order is checked here against
the rule the page promises: a cell that starts with a number (``[-+]?digit``) sorts by that leading number, as
a number ("10" after "9"); other text by its letters; the first click sorts ascending and the second
descending, and in both directions numbers come first, then text (such as "-" for a missing value), then empty
cells. Rows move whole: each click leaves the same rows, only in another order.

Exits 0 when every column of every table sorts so, 1 listing the columns that do not, and 2 when Chromium is
missing or fails. It reads the records only (no torch), like the board.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

#: Chromium executables tried, in order.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: Headless, without a GPU, a sandbox (as root in a container) or any network traffic of its own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: The id of the ``<pre>`` the clicking script writes its JSON into.
OUTPUT_ID = "sort-check"
#: Runs after the page's own scripts: clicks each header twice and records the rows (cell texts) each time.
CLICKS = """
(function () {
  function rows(table) {
    return Array.prototype.map.call(table.tBodies[0].rows, function (tr) {
      return Array.prototype.map.call(tr.cells, function (td) { return td.textContent; });
    });
  }
  var out = [];
  document.querySelectorAll("table.sortable").forEach(function (table, t) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      var before = rows(table);
      th.click();
      var first = rows(table), firstOrder = th.getAttribute("data-order");
      th.click();
      out.push({table: t, column: column, header: th.textContent, before: before, first: first,
                second: rows(table), orders: [firstOrder, th.getAttribute("data-order")]});
    });
  });
  var pre = document.createElement("pre");
  pre.id = "@OUTPUT_ID@";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
""".replace("@OUTPUT_ID@", OUTPUT_ID)
_LEADING_NUMBER = re.compile(r"^[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?")


def find_browser() -> str | None:
    """The path of the first Chromium executable on PATH (see :data:`BROWSERS`), or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def board_page(results: Path) -> str:
    """The HTML board of the records under ``results``, as ``archbench leaderboard --format html`` writes it."""
    from archbench.board.aggregate import require_records
    from archbench.board.compose import compose
    from archbench.board.formats import render_html
    from archbench.board.latency import read_sittings

    return render_html(compose(require_records(results), sittings=read_sittings(results)))


def with_clicks(page: str) -> str:
    """``page`` with :data:`CLICKS` run last (just before ``</body>``)."""
    at = page.rindex("</body>")
    return f"{page[:at]}<script>{CLICKS}</script>{page[at:]}"


def clicked_dom(browser: str, page: Path, timeout: float = 120.0) -> str:
    """The DOM of ``page`` after its scripts ran in headless Chromium (``--dump-dom``), from a fresh profile."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if done.returncode != 0 or OUTPUT_ID not in done.stdout:
        raise RuntimeError(f"{browser} exited with {done.returncode} and no {OUTPUT_ID}: {done.stderr[-2000:]}")
    return done.stdout


def clicked_columns(dom: str) -> list[dict[str, Any]]:
    """The JSON the clicking script wrote into ``dom``: one dict per (table, column) clicked."""
    found = re.search(rf'<pre id="{OUTPUT_ID}">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError(f"no <pre id={OUTPUT_ID!r}> in the page: its script did not run")
    return json.loads(html.unescape(found.group(1)))


def sort_class(text: str) -> tuple[int, float | str]:
    """(0, leading number) | (1, casefolded text) | (2, "") for empty: where a cell belongs in the order."""
    text = text.strip()
    number = _LEADING_NUMBER.match(text)
    if number:
        return 0, float(number.group())
    return (1, text.casefold()) if text else (2, "")


def order_error(cells: list[str], ascending: bool) -> str | None:
    """What is wrong with the order of ``cells`` sorted ascending (or descending), or None when it is right."""
    keys = [sort_class(c) for c in cells]
    for i, (a, b) in enumerate(zip(keys, keys[1:])):
        wrong = a[0] > b[0] if a[0] != b[0] else (a > b if ascending else a < b)
        if wrong:
            return f"rows {i + 1} and {i + 2}: {cells[i]!r} before {cells[i + 1]!r}"
    return None


def check(columns: list[dict[str, Any]]) -> list[str]:
    """One line per column that did not sort as promised (see the module docstring); empty when all did."""
    problems = []
    for col in columns:
        where = f"table {col['table']} column {col['column']} ({col['header']!r})"
        before = Counter(map(tuple, col["before"]))
        if col["orders"] != ["asc", "desc"]:
            problems.append(f"{where}: data-order {col['orders']} after two clicks, not ['asc', 'desc']")
        for name, ascending in (("first", True), ("second", False)):
            rows = col[name]
            if Counter(map(tuple, rows)) != before:
                problems.append(f"{where}: the {name} click changed the rows, not only their order")
            wrong = order_error([row[col["column"]] for row in rows], ascending)
            if wrong:
                problems.append(f"{where}: {name} click ({'ascending' if ascending else 'descending'}): {wrong}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results/board"), help="folder with the board's runs/")
    parser.add_argument("--html", type=Path, help="check this page instead of rendering the board of --results")
    args = parser.parse_args()
    browser = find_browser()
    if browser is None:
        print(f"no Chromium on PATH (tried {', '.join(BROWSERS)}); Debian: apt-get install chromium", file=sys.stderr)
        sys.exit(2)
    page = args.html.read_text() if args.html else board_page(args.results)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "board.html"
        path.write_text(with_clicks(page))
        try:
            columns = clicked_columns(clicked_dom(browser, path))
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(err, file=sys.stderr)
            sys.exit(2)
    problems = check(columns)
    tables = len({c["table"] for c in columns})
    for line in problems:
        print(line)
    print(f"{len(columns)} columns of {tables} tables clicked twice each; {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
