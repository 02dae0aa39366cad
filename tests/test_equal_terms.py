"""Equal terms (one op for every neck) and paired initialisation (the necks of one seed share backbone and head)."""

from __future__ import annotations

import json

import pytest
import torch

from archbench.board.aggregate import build_table
from archbench.errors import UserError
from archbench.models.detector import Detector
from archbench.models.scaling import get_rule
from archbench.models.seeding import part_seed
from archbench.models.segmenter import Segmenter
from archbench.runs.records import load_records
from archbench.runs.sweep import Prepared, RunRequest, sweep
from archbench.search.study import StudySettings
from archbench.spec import resolve_spec
from archbench.spec.terms import NATIVE, PROTOCOLS, Terms, resolve_terms, terms_of
from archbench.train.trainer import TrainConfig

from helpers import run_cli

TINY = TrainConfig(epochs=1, batch_size=8, warmup_steps=1)
CONFIG = get_rule("proxy").config(0)


# --- terms --------------------------------------------------------------------------------------------------


def test_protocols_and_single_overrides_have_stable_labels():
    assert resolve_terms() == Terms() and resolve_terms().label == NATIVE and resolve_terms().native
    eff = resolve_terms("efficientdet")
    assert eff.label == "efficientdet" and dict(eff.overrides) == PROTOCOLS["efficientdet"]
    assert resolve_terms("efficientdet", act="swish").label == "efficientdet"  # the protocol's own value
    relu = resolve_terms("efficientdet", act="relu")
    assert relu.label == "efficientdet+act=relu" and relu.overrides["op_type"] == "sepconv"
    assert resolve_terms(op="sepconv", act="swish").label == "act=swish,op_type=sepconv"
    assert Terms().to_config() == {}
    assert eff.to_config() == {"terms": "efficientdet", "terms_overrides": dict(sorted(eff.overrides.items()))}


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"protocol": "tf"}, "--terms 'tf'"),
        ({"act": "gelu2"}, "--act 'gelu2'"),
        ({"op": "dwconv"}, "--op 'dwconv'"),
        ({"norm": "ln"}, "--norm 'ln'"),
        ({"fuse": "max"}, "--fuse 'max'"),
    ],
)
def test_bad_terms_are_refused_naming_the_flag(kwargs, needle):
    protocol = kwargs.pop("protocol", None)
    with pytest.raises(UserError, match="choose one of") as info:
        resolve_terms(protocol, **kwargs)
    assert needle in info.value.message


def test_a_run_under_terms_trains_the_overridden_spec_and_hashes_differently(tiny_data):
    native = Prepared(RunRequest(neck="fpn", phi=0, seed=0, data=tiny_data, train=TINY))
    equal = Prepared(
        RunRequest(neck="fpn", phi=0, seed=0, data=tiny_data, train=TINY, terms=resolve_terms("efficientdet"))
    )
    assert native.spec.op.type == "conv" and native.spec.op.act == "none"  # FPN: a plain 3x3 conv
    assert (equal.spec.op.type, equal.spec.op.act, equal.spec.op.order) == ("sepconv", "swish", "act_first")
    assert equal.spec.name == "fpn" and equal.spec.spec_hash() != native.spec.spec_hash()
    assert "terms" not in native.config and equal.config["terms"] == "efficientdet"
    assert equal.config["spec_hash"] == equal.spec.spec_hash() and equal.hash != native.hash
    assert terms_of(native.config) == NATIVE and terms_of(equal.config) == "efficientdet"
    # the record holds the topology as trained
    assert equal.record(status="ok").spec == equal.spec.to_dict()


def test_records_made_before_terms_and_paired_init_keep_their_config_hash(tiny_data):
    old_style = Prepared(RunRequest(neck="fpn", phi=0, seed=0, data=tiny_data, train=TINY, init="one_stream"))
    paired = Prepared(RunRequest(neck="fpn", phi=0, seed=0, data=tiny_data, train=TINY))
    assert "terms" not in old_style.config and "init" not in old_style.config
    assert paired.config["init"] == "per_part" and paired.hash != old_style.hash
    with pytest.raises(UserError, match="init 'random'"):
        Prepared(RunRequest(neck="fpn", phi=0, seed=0, data=tiny_data, train=TINY, init="random"))


def test_board_groups_runs_by_terms(tiny_data, tmp_path):
    terms = [Terms(), resolve_terms("efficientdet")]
    sweep(
        [RunRequest(neck="fpn", phi=0, seed=0, data=tiny_data, train=TINY, terms=t, threads=2) for t in terms], tmp_path
    )
    records = load_records(tmp_path)
    assert sorted(terms_of(r.config) for r in records) == ["efficientdet", NATIVE]
    table = build_table(records)
    assert sorted(table["terms"]) == ["efficientdet", NATIVE] and list(table["rank"]) == [1, 1]  # ranked apart


def test_cli_terms_and_init_flags(tiny_data, tmp_path):
    bad = run_cli("run", "--neck", "fpn", "--data", tiny_data, "--terms", "tf", "--results", str(tmp_path))
    assert bad.returncode == 2 and "--terms 'tf'" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("run", "--neck", "fpn", "--data", tiny_data, "--init", "random", "--results", str(tmp_path))
    assert bad.returncode == 2 and "--init 'random'" in bad.stderr
    ok = run_cli(
        "run", "--neck", "fpn", "--data", tiny_data, "--epochs", "1", "--batch-size", "8", "--terms", "efficientdet",
        "--act", "relu", "--threads", "2", "--results", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    (path,) = (tmp_path / "runs").glob("*.json")
    config = json.loads(path.read_text())["config"]
    assert config["terms"] == "efficientdet+act=relu" and config["terms_overrides"]["act"] == "relu"
    assert config["init"] == "per_part"
    assert not list(tmp_path.glob("runs/.tmp-*"))


def test_profile_takes_the_same_terms():
    out = run_cli("profile", "--neck", "fpn", "--phi", "0", "--terms", "efficientdet", "--format", "json")
    native = run_cli("profile", "--neck", "fpn", "--phi", "0", "--format", "json")
    assert out.returncode == 0 and native.returncode == 0
    assert json.loads(out.stdout)[0]["params_neck"] < json.loads(native.stdout)[0]["params_neck"]  # separable convs
    assert run_cli("profile", "--neck", "fpn", "--terms", "nope").returncode == 2


def test_search_settings_of_older_studies_read_as_native_one_stream():
    settings = StudySettings(
        neck="bifpn", spec_hash="x", space={}, space_digest="d", phis=(0,), objective="single", gflops_budget=None,
        data="synthetic", subset=None, train={}, seed=0,
    )  # fmt: skip
    assert settings.terms is None and settings.init == "one_stream"
    assert StudySettings.from_dict(settings.to_dict()) == settings


# --- paired initialisation ------------------------------------------------------------------------------------


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_per_part_init_gives_every_neck_of_a_seed_the_same_backbone_and_head():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    fpn = Detector(resolve_spec("fpn"), CONFIG, 3, init_seed=7)
    bifpn = Detector(resolve_spec("bifpn"), CONFIG, 3, init_seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is left as it was
    for part in ("backbone", "class_net", "box_net"):
        assert _same(_state(getattr(fpn, part)), _state(getattr(bifpn, part))), part
    other_seed = Detector(resolve_spec("fpn"), CONFIG, 3, init_seed=8)
    assert not _same(_state(fpn.class_net), _state(other_seed.class_net))
    assert not _same(_state(fpn.backbone), _state(other_seed.backbone))
    seg_a = Segmenter(resolve_spec("fpn"), CONFIG, 4, init_seed=7)
    seg_b = Segmenter(resolve_spec("panet"), CONFIG, 4, init_seed=7)
    assert _same(_state(seg_a.head), _state(seg_b.head)) and _same(_state(seg_a.backbone), _state(fpn.backbone))


def test_one_stream_init_gives_necks_of_a_seed_different_heads():
    torch.manual_seed(7)
    fpn = Detector(resolve_spec("fpn"), CONFIG, 3)
    torch.manual_seed(7)
    bifpn = Detector(resolve_spec("bifpn"), CONFIG, 3)
    assert _same(_state(fpn.backbone), _state(bifpn.backbone))  # built first, from the same stream
    assert not _same(_state(fpn.class_net), _state(bifpn.class_net))  # after necks of different sizes


def test_part_seeds_are_distinct_and_stable():
    seeds = {part_seed(s, p) for s in range(3) for p in ("backbone", "neck", "head")}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)
    assert part_seed(0, "head") == part_seed(0, "head")
