"""Spec data model, YAML round trips, hashing, families and the validation battery."""

from __future__ import annotations

import textwrap

import pytest

from archbench.errors import UserError
from archbench.spec import builtin_names, builtin_spec, dump_yaml, parse_yaml, resolve_spec
from archbench.spec.graph import execution_order

GOOD = """
name: tiny
levels: [3, 4, 5]
fuse: weighted
nodes:
  - {id: td4, level: 4, inputs: [in4, in5]}
  - {id: out3, level: 3, inputs: [in3, td4]}
  - {id: out4, level: 4, inputs: [in4, td4, out3]}
  - {id: out5, level: 5, inputs: [in5, out4]}
outputs: {3: out3, 4: out4, 5: out5}
"""


def rules(text: str) -> list[str]:
    _, problems = parse_yaml(textwrap.dedent(text), "t.yaml")
    return [p.rule for p in problems if p.severity == "error"]


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_dump_load_roundtrip(name):
    spec = builtin_spec(name)
    again, problems = parse_yaml(dump_yaml(spec), f"{name}.yaml")
    assert not [p for p in problems if p.severity == "error"]
    assert again == spec
    assert again.spec_hash() == spec.spec_hash()


@pytest.mark.parametrize("name", ["fpn", "panet", "bifpn", "ida", "hda"])
@pytest.mark.parametrize("levels", [(2, 3, 4, 5, 6), (4, 5, 6), (3, 4, 5, 6, 7, 8)])
def test_families_generate_valid_specs_for_any_level_range(name, levels):
    spec = builtin_spec(name, levels)
    assert spec.levels == levels
    assert sorted(spec.outputs) == list(levels)
    _, problems = parse_yaml(dump_yaml(spec), "x.yaml")
    assert [p for p in problems if p.severity == "error"] == []


def test_nasfpn_is_fixed_to_levels_3_to_7():
    with pytest.raises(UserError, match="levels 3..7"):
        builtin_spec("nasfpn", (3, 4, 5))


def test_hash_ignores_name_and_description_but_not_topology():
    spec = builtin_spec("bifpn")
    renamed, _ = parse_yaml(dump_yaml(spec).replace("name: bifpn", "name: mine", 1), "m.yaml")
    assert renamed.name == "mine" and renamed.spec_hash() == spec.spec_hash()
    assert builtin_spec("bifpn_sum").spec_hash() != spec.spec_hash()
    assert builtin_spec("bifpn").spec_hash() == spec.spec_hash()  # stable across generations


def test_bifpn_node_list_matches_the_paper():
    spec = builtin_spec("bifpn")
    got = {n.id: list(n.inputs) for n in spec.nodes}
    assert got == {
        "td6": ["in6", "in7"],
        "td5": ["in5", "td6"],
        "td4": ["in4", "td5"],
        "out3": ["in3", "td4"],
        "out4": ["in4", "td4", "out3"],
        "out5": ["in5", "td5", "out4"],
        "out6": ["in6", "td6", "out5"],
        "out7": ["in7", "out6"],
    }


def test_hda_follows_dla34_depths_and_takes_the_finer_root_as_bottom():
    spec = builtin_spec("hda")  # DLA-34: depth 2 on P3/P4, 1 above
    assert spec.node(spec.outputs[3]).inputs == ("b3r2", "b3r1", "root3l")  # lowest level: no bottom
    assert spec.node(spec.outputs[4]).inputs == ("b4r2", "b4r1", spec.outputs[3], "root4l")
    assert spec.node(spec.outputs[7]).inputs == ("b72", "b71", spec.outputs[6])
    blocks = [n for n in spec.nodes if n.id.startswith("b")]
    assert all(n.residual and n.op == {"convs": 2} for n in blocks)  # BasicBlocks


def test_ida_chains_grow_towards_shallow_levels():
    spec = builtin_spec("ida")
    chain_len = {lvl: sum(1 for n in spec.nodes if n.id.startswith(f"ida{lvl}_")) for lvl in range(3, 7)}
    assert chain_len == {6: 1, 5: 2, 4: 3, 3: 4}


def test_execution_order_allows_any_file_order():
    td4 = "  - {id: td4, level: 4, inputs: [in4, in5]}\n"
    reordered = GOOD.replace(td4, "").replace("outputs:", td4 + "outputs:")
    spec, problems = parse_yaml(reordered, "r.yaml")
    assert not problems and spec.nodes[-1].id == "td4"
    order = [n.id for n in execution_order(spec)]
    assert order.index("td4") < order.index("out3")


def test_good_spec_has_no_problems():
    assert rules(GOOD) == []


# --- the validation battery: one test per rule ------------------------------------------------
def test_rule_unknown_input():
    assert rules(edit("inputs: [in3, td4]", "inputs: [in3, td9]")) == ["unknown-input"]


def test_rule_cycle():
    text = edit("{id: td4, level: 4, inputs: [in4, in5]}", "{id: td4, level: 4, inputs: [in4, out4]}")
    assert "cycle" in rules(text)


def test_rule_self_cycle():
    assert "cycle" in rules(edit("inputs: [in5, out4]", "inputs: [in5, out5]"))


def test_rule_duplicate_id():
    assert "duplicate-id" in rules(edit("{id: out5, level: 5", "{id: out4, level: 5"))


def test_rule_node_level_outside_range():
    assert "level-out-of-range" in rules(edit("{id: out5, level: 5", "{id: out5, level: 9"))


def test_rule_input_level_outside_range():
    assert rules(edit("inputs: [in4, in5]", "inputs: [in4, in8]")) == ["level-out-of-range"]


def test_rule_output_level_missing():
    assert rules(edit("outputs: {3: out3, 4: out4, 5: out5}", "outputs: {3: out3, 4: out4}")) == ["output-missing"]


def test_rule_output_not_produced():
    assert "output-not-produced" in rules(edit("5: out5}", "5: nothing}"))


def test_rule_output_at_wrong_level():
    assert "output-level-mismatch" in rules(edit("5: out5}", "5: out4}"))


def test_rule_unknown_fuse_type():
    assert rules(edit("fuse: weighted", "fuse: blend")) == ["unknown-type"]


def test_rule_unknown_op_type():
    assert rules(edit("levels: [3, 4, 5]", "levels: [3, 4, 5]\nop: {type: magic}")) == ["unknown-type"]


def test_rule_fusion_needs_two_inputs():
    text = edit("{id: td4, level: 4, inputs: [in4, in5]}", "{id: td4, level: 4, inputs: [in5], fuse: softmax}")
    assert rules(text) == ["fusion-arity"]


def test_rule_convs_need_a_conv():
    problems = parse_yaml(edit("inputs: [in5, out4]}", "inputs: [in5, out4], op: {type: none, convs: 2}}"), "t")[1]
    assert [(p.rule, p.node, p.field) for p in problems] == [("bad-value", "out5", "op.convs")]
    spec_wide = edit("levels: [3, 4, 5]", "levels: [3, 4, 5]\nop: {type: none, convs: 3}")
    assert [(p.rule, p.field) for p in parse_yaml(spec_wide, "t")[1]] == [("bad-value", "op.convs")]
    inherited = edit("levels: [3, 4, 5]", "levels: [3, 4, 5]\nop: {type: none}")
    assert rules(inherited.replace("inputs: [in5, out4]}", "inputs: [in5, out4], op: {convs: 2}}")) == ["bad-value"]
    # a spec-wide convs that a type-none node does not use is a default, like the kernel: fine
    lateral = edit("levels: [3, 4, 5]", "levels: [3, 4, 5]\nop: {convs: 2}")
    assert rules(lateral.replace("inputs: [in5, out4]}", "inputs: [in5, out4], op: none}")) == []


def test_single_input_node_under_a_multi_input_default_is_fine():
    assert rules(edit("inputs: [in4, in5]}", "inputs: [in5]}")) == []


def test_rule_malformed_yaml():
    _, problems = parse_yaml("levels: [3, 4\nnodes: [", "bad.yaml")
    assert [p.rule for p in problems] == ["malformed-yaml"]
    assert "line" in problems[0].message


def test_rule_wrong_types():
    text = edit("{id: out5, level: 5, inputs: [in5, out4]}", "{id: out5, level: five, inputs: in5}")
    got = rules(text)
    assert got.count("wrong-type") == 2


def test_rule_unknown_field_catches_typos():
    assert rules(edit("{id: td4, level: 4,", "{id: td4, levle: 4, level: 4,")) == ["unknown-field"]


def test_rule_non_contiguous_levels():
    assert "bad-levels" in rules(edit("levels: [3, 4, 5]", "levels: [3, 5]"))


def test_dead_node_is_a_warning_not_an_error():
    text = edit("outputs:", "  - {id: spare, level: 3, inputs: [in3]}\noutputs:")
    spec, problems = parse_yaml(text, "d.yaml")
    assert spec is not None
    assert [(p.rule, p.severity, p.node) for p in problems] == [("dead-node", "warning", "spare")]


def test_every_problem_is_listed_at_once_with_file_node_and_field():
    text = edit("inputs: [in3, td4]", "inputs: [in3, td9]").replace("fuse: weighted", "fuse: blend")
    text = text.replace("{id: out5, level: 5", "{id: out5, level: 9")
    _, problems = parse_yaml(text, "many.yaml")
    assert {p.rule for p in problems} >= {"unknown-input", "unknown-type", "level-out-of-range"}
    msg = str(next(p for p in problems if p.rule == "unknown-input"))
    assert msg.startswith("many.yaml: node 'out3', field 'inputs'") and "td9" in msg


def test_resolve_spec_accepts_files_and_refuses_bad_ones(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text(GOOD)
    assert resolve_spec(str(good)).name == "tiny"
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit("inputs: [in3, td4]", "inputs: [in3, td9]"))
    with pytest.raises(UserError, match="unknown-input"):
        resolve_spec(str(bad))
    with pytest.raises(UserError, match="no such spec file"):
        resolve_spec(str(tmp_path / "missing.yaml"))


def test_rule_bad_and_reserved_ids():
    assert rules(
        edit("{id: td4, level: 4, inputs: [in4, in5]}", "{id: td.4, level: 4, inputs: [in4, in5]}")
        .replace("td4]", "td.4]")
        .replace("td4, out3]", "td.4, out3]")
    ) == ["bad-id"]
    assert "reserved-id" in rules(edit("{id: out5, level: 5", "{id: in5, level: 5"))


def test_rule_duplicate_input():
    assert rules(edit("inputs: [in5, out4]", "inputs: [in5, out4, out4]")) == ["duplicate-input"]


def test_rule_duplicate_output_level():
    assert "duplicate-output" in rules(edit("5: out5}", "5: out5, '5': out5}"))


def test_rule_missing_field_and_no_inputs():
    no_level = edit("{id: out5, level: 5, inputs: [in5, out4]}", "{id: out5, inputs: [in5, out4]}")
    assert "missing-field" in rules(no_level)
    assert "no-inputs" in rules(edit("inputs: [in5, out4]", "inputs: []"))


def _renamed(spec, **renames):
    """``spec`` with node ids renamed (inputs and outputs follow) and its nodes listed in reverse file order."""
    from dataclasses import replace

    def ref(r: str) -> str:
        return renames.get(r, r)

    nodes = tuple(replace(n, id=ref(n.id), inputs=tuple(ref(i) for i in n.inputs)) for n in reversed(spec.nodes))
    return replace(spec, nodes=nodes, outputs={lvl: ref(r) for lvl, r in spec.outputs.items()})


def test_network_key_ignores_node_ids_node_order_and_the_order_of_summed_inputs_only():
    from dataclasses import replace

    from archbench.spec.graph import network_key

    spec, _ = parse_yaml(textwrap.dedent(GOOD), "t.yaml")
    assert spec is not None
    renamed = _renamed(spec, td4="a", out3="b")
    assert renamed.spec_hash() != spec.spec_hash() and network_key(renamed) == network_key(spec)
    out4 = spec.node("out4")
    swapped = replace(spec, nodes=tuple(replace(n, inputs=n.inputs[::-1]) if n is out4 else n for n in spec.nodes))
    assert network_key(swapped) == network_key(spec)  # weighted: each input its own weight, all started alike
    for fuse in ("concat", "attention"):  # the order is part of the network
        fixed = replace(spec, fuse=fuse)
        assert network_key(replace(swapped, fuse=fuse)) != network_key(fixed)
    residual = replace(spec, nodes=tuple(replace(n, residual=True) if n is out4 else n for n in spec.nodes))
    swapped_residual = replace(residual, nodes=tuple(
        replace(n, inputs=n.inputs[::-1]) if n.id == "out4" else n for n in residual.nodes))  # fmt: skip
    assert network_key(swapped_residual) != network_key(residual)  # the residual adds the first input
    assert network_key(replace(spec, fuse="sum")) != network_key(spec)  # spec-wide settings count


def test_network_key_tells_a_shared_node_from_two_alike_ones():
    """OPANAS's space: F3 a copy of F2 (F2 -> F3 skip) makes points that differ in which copy a path reads one
    network; two top-down paths out of F1 are two networks' worth of layers, not one read twice."""
    from archbench.search.spaces import load_space, resolve_space
    from archbench.spec.graph import network_key

    space = load_space(resolve_space("opanas_paths"))
    none = {f"F{i}-F{j}": "none" for i in range(1, 4) for j in range(i + 1, 5)}
    copy = {**none, "F1-F2": "top_down", "F2-F3": "skip"}
    a = space.spec({**copy, "F2-F4": "bottom_up", "F3-F4": "scale_equalizing"})
    b = space.spec({**copy, "F2-F4": "scale_equalizing", "F3-F4": "bottom_up"})
    assert a.spec_hash() != b.spec_hash() and network_key(a) == network_key(b)
    two = space.spec(
        {**none, "F1-F2": "top_down", "F1-F3": "top_down", "F2-F4": "bottom_up", "F3-F4": "scale_equalizing"}
    )
    assert network_key(two) != network_key(a)  # F3 its own top-down path: more layers
