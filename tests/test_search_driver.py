"""scripts/make_search.py's plan: the study totals its calls ask for, the demo studies' names and the workers' sampler
seeds."""

from __future__ import annotations

from scriptkit import load_script


def test_totals_grow_by_step_and_end_at_the_trials():
    script = load_script("make_search")
    assert script.totals(150, 10) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150]
    assert script.totals(25, 10) == [10, 20, 25]
    assert script.totals(5, 10) == [5]


def test_the_repeat_search_gets_its_own_study():
    script = load_script("make_search")
    assert script.study_name("opanas_paths", "efficientdet", 0) == "opanas_paths-efficientdet"
    assert script.study_name("opanas_paths", "efficientdet", 1) == "opanas_paths-efficientdet-sampler1"


def test_the_workers_of_one_search_sample_with_different_seeds():
    script = load_script("make_search")
    assert script.worker_seeds(0, 2) == [0, 1000]
    assert script.worker_seeds(1, 2) == [1, 1001]
    assert set(script.worker_seeds(0, 2)).isdisjoint(script.worker_seeds(1, 2))
