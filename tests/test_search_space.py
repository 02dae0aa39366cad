"""Scaling spaces: the shipped files, sampling under the alpha-beta-gamma constraint, and every validation rule."""

from __future__ import annotations

import itertools
import math
import textwrap
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import yaml

from archbench.errors import UserError
from archbench.models.scaling import PROXY, CompoundRule, EfficientNetRule, rule_from_dict, rule_to_dict
from archbench.search.space import Range, ScalingSpace, parse_space
from archbench.search.space_rules import Infeasible, SpaceError
from archbench.search.spaces import DEFAULT_SPACE, load_space, resolve_space

from helpers import run_cli

#: the shipped spaces: the checkout's search_spaces/, mapped into the package (tests/test_wheel.py checks a wheel)
SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_spaces_load_and_build_their_rules():
    family = load_space(SPACES / "efficientdet_family.yaml")
    assert family.phis == (0, 1) and family.constraint is None
    assert {r.name for r in family.ranges} == {
        "width_base",
        "width_growth",
        "repeats_base",
        "repeats_step",
        "head_base",
        "resolution_base",
        "resolution_step",
    }
    values = {r.name: r.low for r in family.ranges}
    rule = family.rule(values, "t")
    assert isinstance(rule, CompoundRule) and rule.backbones == PROXY.backbones and rule.head_every == PROXY.head_every
    assert rule.config(1).width == round(16 * 1.1 / 8) * 8 and rule.config(1).repeats == 1
    abg = load_space(SPACES / "efficientnet_abg.yaml")
    assert abg.phis == (1,) and abg.constraint.solve == "gamma" and abg.constraint.product == 2.0


def grid(r: Range, n: int = 41) -> list[float]:
    """Every value a stepped (or integer) range can take; ``n`` evenly spaced values of a continuous one."""
    if r.step is not None or r.integer:
        step = r.step or 1
        return [r.low + k * step for k in range(int(math.floor((r.high - r.low) / step + 1e-9)) + 1)]
    if r.log:
        return [r.low * (r.high / r.low) ** (k / (n - 1)) for k in range(n)]
    return [r.low + (r.high - r.low) * k / (n - 1) for k in range(n)]


def anchors(space: ScalingSpace, moving: str) -> list[dict[str, float]]:
    """Every combination of the other coefficients: each step of a stepped one, both ends and the middle of the rest."""
    others = [r for r in space.ranges if r.name != moving]
    values = [grid(r) if r.step is not None or r.integer else grid(r, 3) for r in others]
    return [dict(zip([r.name for r in others], combo)) for combo in itertools.product(*values)]


def collapses(space: ScalingSpace) -> list[str]:
    """Where rounding hides a searched coefficient at the space's phis, with the others anywhere in their ranges.

    A stepped coefficient collapses where two adjacent steps build the same models; a continuous one where
    its range's interior builds one model only (a value only an endpoint reaches is never sampled).
    """
    found = []
    for r in space.ranges:
        values = grid(r)
        stepped = r.step is not None or r.integer
        for anchor in anchors(space, r.name):
            models = [tuple(space.rule({**anchor, r.name: v}, "t").config(p) for p in space.phis) for v in values]
            if stepped:
                same = [(a, b) for (a, ma), (b, mb) in itertools.pairwise(zip(values, models)) if ma == mb]
                if same:
                    found.append(
                        f"{space.name}: {r.name} = {same[0][0]:g} and {same[0][1]:g} build one model at {anchor}"
                    )
                    break
            elif len(set(models[1:-1])) < 2:
                found.append(f"{space.name}: {r.name} builds one model inside {r.low:g}..{r.high:g} at {anchor}")
                break
    return found


#: the shipped scaling spaces (the topology spaces, files with a ``graph`` field, are tests/test_topology_space.py's)
SCALING = sorted(p for p in SPACES.glob("*.yaml") if "graph" not in yaml.safe_load(p.read_text()))


def test_the_shipped_scaling_spaces_are_the_two_rules():
    assert [p.stem for p in SCALING] == ["efficientdet_family", "efficientnet_abg"]


@pytest.mark.parametrize("path", SCALING, ids=lambda p: p.stem)
def test_every_step_of_every_searched_coefficient_changes_the_model(path):
    assert collapses(load_space(path)) == []


def test_the_collapse_check_finds_the_plateaus_the_old_spaces_had():
    old_abg = """\
        name: a
        rule: efficientnet
        phis: [1]
        search: {alpha: {low: 1.0, high: 1.4}, beta: {low: 1.0, high: 1.2}, gamma: {low: 1.0, high: 1.5}}
        constraint: {product: 2.0, solve: gamma}
        """
    old_family = "name: f\nrule: compound\nphis: [0, 1]\nsearch: {repeats_step: {low: 0.5, high: 1.5, step: 0.5}}\n"
    found = collapses(parse_space(yaml.safe_load(textwrap.dedent(old_abg)), "old")[0])
    assert len(found) == 1 and found[0].startswith("a: alpha builds one model inside 1..1.4"), found
    found = collapses(parse_space(yaml.safe_load(old_family), "old")[0])
    assert found == ["f: repeats_step = 1 and 1.5 build one model at {}"], found


def test_every_feasible_point_of_the_abg_space_is_its_own_model_and_about_doubles():
    abg = load_space(SPACES / "efficientnet_abg.yaml")
    sampled = [r for r in abg.ranges if r.name != abg.constraint.solve]
    models, infeasible = {}, []
    for point in itertools.product(*(grid(r) for r in sampled)):
        fixed = dict(zip([r.name for r in sampled], point))
        try:
            values = abg.sample(optuna.trial.FixedTrial(fixed))
        except Infeasible:
            infeasible.append(point)
            continue
        base, scaled = (abg.rule(values, "t").config(p) for p in (0, 1))
        realised = (
            (scaled.repeats / base.repeats)
            * (scaled.width / base.width) ** 2
            * (scaled.resolution / base.resolution) ** 2
        )
        assert scaled.head_depth == scaled.repeats and 1.89 < realised < 2.07, (point, scaled, realised)
        models[point] = (scaled.repeats, scaled.width, scaled.resolution)
    assert models == {
        (1.0, 1.0): (2, 32, 184),
        (1.0, 1.25): (2, 40, 144),
        (1.5, 1.0): (3, 32, 144),
        (2.0, 1.0): (4, 32, 128),
    }
    assert infeasible == [(1.5, 1.25), (2.0, 1.25)]


def test_a_shipped_space_can_be_named_and_the_family_is_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # names resolve against the checkout, not the working directory
    assert resolve_space("efficientnet_abg") == SPACES / "efficientnet_abg.yaml"
    assert resolve_space(DEFAULT_SPACE) == SPACES / "efficientdet_family.yaml"
    (tmp_path / "efficientnet_abg").write_text("a local file wins")
    assert resolve_space("efficientnet_abg") == Path("efficientnet_abg")
    with pytest.raises(UserError, match="no such file, and not the name of a shipped space .efficientdet_family"):
        resolve_space("efficientdet")
    with pytest.raises(UserError, match="not the name"):
        resolve_space("sub/efficientnet_abg")  # a path is never looked up among the shipped spaces


def test_constraint_is_solved_exactly_and_infeasible_points_are_rejected():
    abg = load_space(SPACES / "efficientnet_abg.yaml")
    values = abg.sample(optuna.trial.FixedTrial({"alpha": 1.5, "beta": 1.0}))
    assert math.isclose(values["alpha"] * values["beta"] ** 2 * values["gamma"] ** 2, 2.0)
    rule = abg.rule(values, "t")
    assert isinstance(rule, EfficientNetRule)
    base, scaled = rule.config(0), rule.config(1)
    assert base == replace(PROXY.config(0), preset="t")  # phi 0 is the base model
    assert scaled.repeats == math.ceil(base.repeats * 1.5) and scaled.width == base.width
    assert scaled.resolution == round(base.resolution * values["gamma"] / 8) * 8
    with pytest.raises(Infeasible, match="gamma = 0.9238 .* outside its range 1..1.5"):  # alpha * beta^2 > 2
        abg.sample(optuna.trial.FixedTrial({"alpha": 1.5, "beta": 1.25}))


def test_rule_dict_round_trip():
    abg = load_space(SPACES / "efficientnet_abg.yaml")
    rule = abg.rule({"alpha": 1.2, "beta": 1.1, "gamma": 1.15}, "study:x#3")
    for r in (PROXY, rule):
        assert rule_from_dict(rule_to_dict(r)) == r


@pytest.mark.parametrize(
    "text, rule, where",
    [
        ("name: x\nrule: compound\nphis: [0]\nsearch: {width_base: {low: 8, high: [\n", "malformed-yaml", "line 5"),
        ("name: x\nrule: compound\nphis: [0]\nsearch: {}\n", "nothing-to-search", "field 'search'"),
        ("name: x\nrule: resnet\nphis: [0]\nsearch: {alpha: {low: 1, high: 2}}\n", "unknown-rule", "field 'rule'"),
        ("rule: compound\nphis: [0]\nsearch: {width_base: {low: 8, high: 16}}\n", "missing-field", "field 'name'"),
        (
            "name: x\nrule: compound\nphis: [0]\nsearch: {width: {low: 8, high: 16}}\n",
            "unknown-param",
            "field 'search.width'",
        ),
        (
            "name: x\nrule: compound\nphis: [0]\nsearch: {width_base: {low: 16, high: 8}}\n",
            "bad-range",
            "field 'search.width_base'",
        ),
        (
            "name: x\nrule: compound\nphis: [0]\nsearch: {repeats_base: {low: 1, high: 2.5}}\n",
            "wrong-type",
            "field 'search.repeats_base.high'",
        ),
        (
            "name: x\nrule: compound\nphis: [0]\nsearch: {width_base: {low: 8, high: 16, log: true, step: 8}}\n",
            "bad-range",
            "field 'search.width_base'",
        ),
        (
            "name: x\nrule: compound\nphis: [0]\nsearch: {backbones: {low: 1, high: 2}}\n",
            "not-searchable",
            "field 'search.backbones'",
        ),
        (
            "name: x\nrule: compound\nphis: [0]\nfixed: {width_base: 8}\nsearch: {width_base: {low: 8, high: 16}}\n",
            "duplicate-param",
            "field 'search.width_base'",
        ),
        ("name: x\nrule: compound\nphis: [-1]\nsearch: {width_base: {low: 8, high: 16}}\n", "bad-phis", "field 'phis'"),
        ("name: x\nrule: compound\nphis: [9]\nsearch: {width_base: {low: 8, high: 16}}\n", "bad-phis", "phi 0..7"),
        (
            "name: x\nrule: efficientnet\nphis: [0]\nsearch: {alpha: {low: 1, high: 2}}\n",
            "bad-phis",
            "at phi 0 is its base model",
        ),
        (
            "name: x\nrule: compound\nbase: efficientdet\nphis: [0]\nsearch: {width_base: {low: 8, high: 16}}\n",
            "bad-base",
            "field 'base'",
        ),
        (
            "name: x\nrule: compound\nbase: nope\nphis: [0]\nsearch: {width_base: {low: 8, high: 16}}\n",
            "unknown-preset",
            "field 'base'",
        ),
        (
            "name: x\nrule: compound\nphis: [0]\nsearch: {width_base: {low: 8, high: 16}}\nconstraint: {product: 2}\n",
            "constraint-rule",
            "field 'constraint'",
        ),
        (
            "name: x\nrule: efficientnet\nphis: [1]\nsearch: {alpha: {low: 1, high: 2}}\n"
            "constraint: {product: 2, solve: gamma}\n",
            "constraint-params",
            "missing: beta, gamma",
        ),
        (
            "name: x\nrule: efficientnet\nphis: [1]\nsearch: {alpha: {low: 1, high: 2}, beta: {low: 1, high: 2}, "
            "gamma: {low: 1, high: 2}}\nconstraint: {product: 2, solve: delta}\n",
            "wrong-type",
            "constraint.solve",
        ),
        (
            "name: x\nrule: compound\nphis: [0]\nsearch: {width_base: {low: 8, high: 16}}\nextra: 1\n",
            "unknown-field",
            "field 'extra'",
        ),
        (
            "name: a b\nrule: compound\nphis: [0]\nsearch: {width_base: {low: 8, high: 16}}\n",
            "bad-name",
            "field 'name'",
        ),
    ],
)
def test_bad_space_names_file_field_and_rule(tmp_path, text, rule, where):
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = info.value.message
    assert str(path) in message and f"[{rule}]" in message and where in message, message


def test_every_problem_is_listed_at_once(tmp_path):
    path = write(
        tmp_path,
        """\
        name: x
        rule: compound
        phis: [0]
        fixed: {head_every: two}
        search:
          width_base: {low: 16, high: 8}
          nope: {low: 1, high: 2}
        """,
    )
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert [p.rule for p in info.value.problems] == ["wrong-type", "bad-range", "unknown-param"]


def test_cli_refuses_bad_input_before_any_study_or_record(tmp_path):
    path = write(tmp_path, "name: x\nrule: compound\nphis: [0]\nsearch: {width_base: {low: 16, high: 8}}\n")
    res = run_cli("search", "--neck", "bifpn", "--space", str(path), "--results", str(tmp_path / "r"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "[bad-range]" in res.stderr and str(path) in res.stderr
    assert not (tmp_path / "r").exists()  # refused before any study or record
    no_data = run_cli(
        "search",
        "--neck",
        "bifpn",
        "--space",
        str(SPACES / "efficientnet_abg.yaml"),
        "--data",
        f"coco:{tmp_path / 'nope'}",
        "--results",
        str(tmp_path / "r"),
    )
    assert no_data.returncode == 2 and "nope" in no_data.stderr
    assert not (tmp_path / "r").exists()
    missing = run_cli("search", "--report", "--study", "nope", "--results", str(tmp_path / "r"))
    assert missing.returncode == 2 and "no search database" in missing.stderr
