"""Search spaces: the shipped files, sampling under the alpha-beta-gamma constraint, and every validation rule."""

from __future__ import annotations

import math
import textwrap
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from archbench.errors import UserError
from archbench.models.scaling import PROXY, CompoundRule, EfficientNetRule, rule_from_dict, rule_to_dict
from archbench.search.space import DEFAULT_SPACE, Infeasible, SpaceError, load_space, resolve_space

from helpers import run_cli

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"


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
    values = abg.sample(optuna.trial.FixedTrial({"alpha": 1.2, "beta": 1.1}))
    assert math.isclose(values["alpha"] * values["beta"] ** 2 * values["gamma"] ** 2, 2.0)
    rule = abg.rule(values, "t")
    assert isinstance(rule, EfficientNetRule)
    base, scaled = rule.config(0), rule.config(1)
    assert base == replace(PROXY.config(0), preset="t")  # phi 0 is the base model
    assert scaled.repeats == math.ceil(base.repeats * 1.2) and scaled.width == round(base.width * 1.1 / 8) * 8
    assert scaled.resolution == round(base.resolution * values["gamma"] / 8) * 8
    with pytest.raises(Infeasible, match="gamma = 0.9960 .* outside its range 1..1.5"):  # alpha * beta^2 > 2
        abg.sample(optuna.trial.FixedTrial({"alpha": 1.4, "beta": 1.2}))


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
