"""``archbench profile``: params, FLOPs and latency of whole detectors (or segmenters) per (neck, phi), no training.

Costs are computed on meta tensors (shapes only), so even phi 7 costs seconds. The backbone
and the heads do not depend on the neck, so they are costed once per phi and shared by every
neck's row. Latency (optional) runs the real model on the CPU. :func:`profile` resolves neck
names and a preset; :func:`profile_model` costs one spec at one config that a run has already
resolved (and checked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archbench.costs.flops import FlopCount, count_flops, cpu_latency_ms, param_count
from archbench.costs.modules import module_costs
from archbench.costs.perf.inference import prepare
from archbench.models.backbone import Backbone
from archbench.models.scaling import ModelConfig, ParametricRule, TableRule, get_rule
from archbench.models.trunk import check_levels
from archbench.neck.compiler import compile_neck
from archbench.spec import resolve_spec
from archbench.spec.schema import NeckSpec
from archbench.train.tasks import Task, get_task

GIGA = 1e9
Rule = TableRule | ParametricRule


@dataclass
class _Shared:
    """Costs of the parts every neck shares at one phi, and the (meta) parts for a per-module breakdown."""

    features: list[torch.Tensor]  # meta backbone outputs
    channels: list[int]
    backbone: nn.Module
    params_backbone: int
    flops_backbone: FlopCount
    head: nn.Module
    params_head: int
    flops_head: FlopCount


def _shared_costs(cfg: ModelConfig, num_classes: int, task: Task) -> _Shared:
    """Costs of the backbone and of the task's head (the seg head up to logits at the input size) at ``cfg``."""
    size = (cfg.resolution, cfg.resolution)
    with torch.device("meta"):
        backbone = Backbone(cfg.backbone, cfg.backbone_levels).eval()
        image = torch.empty(1, 3, *size)
        n_levels = len(cfg.levels)
        head = task.head(cfg, num_classes).eval()
    flops_bb, feats = count_flops(backbone, image, modules=backbone)
    # Head inputs: one [1, width, H_l, W_l] per level, sizes halving (ceil) from the last backbone level.
    sizes = [tuple(f.shape[-2:]) for f in feats]
    while len(sizes) < n_levels:
        h, w = sizes[-1]
        sizes.append((-(-h // 2), -(-w // 2)))
    head_in = [torch.empty(1, cfg.width, h, w, device="meta") for h, w in sizes]
    flops_head, _ = count_flops(lambda xs: head(xs, size), head_in, modules=head)
    return _Shared(
        feats, backbone.channels, backbone, param_count(backbone), flops_bb, head, param_count(head), flops_head
    )


def profile_row(
    spec: NeckSpec,
    cfg: ModelConfig,
    shared: _Shared,
    num_classes: int,
    overrides: dict[str, Any],
    by_module: int | None = None,
) -> dict[str, Any]:
    """One row: the config, params and GFLOPs by part for ``spec`` at ``cfg`` (their levels already checked).

    ``by_module``: also the per-module breakdown down to that depth (1: the parts), under ``"modules"``
    (a list of :meth:`ModuleCost.as_dict <archbench.costs.modules.ModuleCost.as_dict>` rows).
    """
    with torch.device("meta"):
        neck = compile_neck(spec, shared.channels, cfg.width, cfg.repeats, **overrides).eval()
    flops_neck, _ = count_flops(neck, shared.features, modules=neck)
    params = {"backbone": shared.params_backbone, "neck": param_count(neck), "head": shared.params_head}
    fv = {"backbone": shared.flops_backbone.fvcore, "neck": flops_neck.fvcore, "head": shared.flops_head.fvcore}
    elementwise = shared.flops_backbone.elementwise + flops_neck.elementwise + shared.flops_head.elementwise
    row: dict[str, Any] = {
        "neck": spec.name,
        "spec_hash": spec.spec_hash(),
        "preset": cfg.preset,
        "phi": cfg.phi,
        "resolution": cfg.resolution,
        "backbone": cfg.backbone,
        "width": cfg.width,
        "repeats": neck.repeats,
        "head_depth": cfg.head_depth,
        "num_classes": num_classes,
        "params_total": sum(params.values()),
        **{f"params_{k}": v for k, v in params.items()},
        "gflops": sum(fv.values()) / GIGA,
        **{f"gflops_{k}": v / GIGA for k, v in fv.items()},
        "gflops_elementwise": elementwise / GIGA,
    }
    if by_module is not None:
        parts = [
            ("backbone", shared.backbone, shared.flops_backbone),
            ("neck", neck, flops_neck),
            ("head", shared.head, shared.flops_head),
        ]
        row["modules"] = [r.as_dict() for part in parts for r in module_costs(*part, by_module)]
    return row


@dataclass(frozen=True)
class LatencyOptions:
    """How ``--latency`` runs the model: timed runs, and the inference rewrites of
    ``archbench.costs.perf.inference``."""

    runs: int = 20
    fuse_bn: bool = False
    channels_last: bool = False
    compile: bool = False

    def label(self) -> str:
        """``eager``, or the rewrites joined by '+': ``fuse`` (BN folded), ``cl`` (channels_last), ``compile``."""
        on = [
            name
            for name, flag in (("fuse", self.fuse_bn), ("cl", self.channels_last), ("compile", self.compile))
            if flag
        ]
        return "+".join(on) or "eager"


def measure_latency(
    spec: NeckSpec, cfg: ModelConfig, num_classes: int, overrides: dict[str, Any], options: LatencyOptions, task: Task
) -> dict[str, Any]:
    """CPU latency of the whole model's forward at batch 1 (random weights, eval mode), on the
    harness of ``scripts/bench_necks.py`` (``archbench.costs.perf.timing``: 3 warm-up calls, then the
    median of ``options.runs``)."""
    model = prepare(
        task.model(spec, cfg, num_classes, neck_overrides=overrides).eval(),
        fuse=options.fuse_bn,
        channels_last=options.channels_last,
        compile=options.compile,
    )
    image = torch.randn(1, 3, cfg.resolution, cfg.resolution)
    stats = cpu_latency_ms(lambda: model(image), runs=options.runs, warmup=3)
    return {
        "latency_ms": stats["median"],
        "latency_min_ms": stats["min"],
        "latency_max_ms": stats["max"],
        "latency_runs": options.runs,
        "threads": torch.get_num_threads(),
        "latency_mode": options.label(),
    }


def add_ratios(rows: list[dict[str, Any]], reference: str) -> None:
    """Add EfficientDet-Table-5 style ratios to ``reference``'s row at the same phi (in place)."""
    refs = {r["phi"]: r for r in rows if r["neck"] == reference}
    for r in rows:
        ref = refs.get(r["phi"])
        if ref is None:
            continue
        r["neck_params_ratio"] = r["params_neck"] / ref["params_neck"]
        r["neck_gflops_ratio"] = r["gflops_neck"] / ref["gflops_neck"]
        r["params_ratio"] = r["params_total"] / ref["params_total"]
        r["gflops_ratio"] = r["gflops"] / ref["gflops"]


def profile_model(spec: NeckSpec, cfg: ModelConfig, num_classes: int, task: Task) -> dict[str, Any]:
    """The row of :func:`profile` for one model a run has prepared: ``spec`` at ``cfg`` (their levels
    already checked, see :func:`~archbench.models.trunk.check_levels`) with ``task``'s head."""
    return profile_row(spec, cfg, _shared_costs(cfg, num_classes, task), num_classes, {})


def profile(
    necks: Sequence[str],
    phis: Sequence[int],
    preset: str | Rule = "efficientdet",
    num_classes: int = 90,
    latency: LatencyOptions | None = None,
    overrides: dict[str, Any] | None = None,
    relative_to: str | None = None,
    on_row: Callable[[str], None] | None = None,
    task: str = "det",
    by_module: int | None = None,
) -> list[dict[str, Any]]:
    """Rows for every (neck, phi), ordered by phi then neck. ``on_row`` is told each row's label as it starts.

    ``task`` picks the head (the one its model builds): ``det`` the class + box nets, ``seg`` the
    semantic-FPN head (its final upsampling to the input size included).

    ``preset`` is a preset name or a rule object (e.g. a search trial's coefficients). ``latency``
    also times each model (see :func:`measure_latency`). ``by_module``: each row also breaks its
    params and FLOPs down by module to that depth (see :func:`profile_row`).
    """
    rule = get_rule(preset) if isinstance(preset, str) else preset
    task_ = get_task(task)  # refuse an unknown task before any work
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    wanted = list(dict.fromkeys(list(necks) + ([relative_to] if relative_to else [])))
    specs = {name: resolve_spec(name) for name in wanted}
    configs = [rule.config(phi) for phi in phis]  # refuse a bad phi before any work
    for cfg in configs:  # and a spec on other levels than a config builds
        for name in wanted:
            check_levels(specs[name], cfg)
    rows = []
    for cfg in configs:
        phi = cfg.phi
        shared = _shared_costs(cfg, num_classes, task_)
        for name in wanted:
            if on_row:
                on_row(f"{name} phi={phi}")
            row = profile_row(specs[name], cfg, shared, num_classes, overrides, by_module)
            if latency:
                row.update(measure_latency(specs[name], cfg, num_classes, overrides, latency, task_))
            rows.append(row)
    if relative_to:
        add_ratios(rows, specs[relative_to].name)
        rows = [r for r in rows if r["neck"] in {specs[n].name for n in necks}]
    return rows
