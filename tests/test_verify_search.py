"""scripts/verify_search.py: which graphs of a search's front it re-trains."""

from __future__ import annotations

import pandas as pd

from scriptkit import load_script


def test_the_graphs_picked_span_the_fronts_cost_range():
    script = load_script("verify_search")
    front = pd.DataFrame({"graph": list("abcdefg"), "GFLOPs": [0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.2]})
    assert list(script.pick_graphs(front, 3).graph) == ["a", "d", "g"]  # cheapest, middle, most expensive
    assert list(script.pick_graphs(front, 4).graph) == ["a", "c", "e", "g"]
    assert list(script.pick_graphs(front.head(2), 3).graph) == ["a", "b"]  # a front smaller than k: all of it
