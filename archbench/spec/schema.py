"""Typed topology specs: the data a neck is compiled from.

A spec is a DAG over pyramid levels. Its inputs are named ``in<L>`` (the feature at level L:
stride 2**L, from the backbone or from the extra-level stem); its nodes fuse resampled inputs
and apply an op; ``outputs`` maps every level to the node (or input) that produces it. A spec
with ``repeat: true`` is one cell, stacked D times by the compiler, cell k's ``in<L>`` being
cell k-1's output at level L.

These classes hold *validated* data. ``archbench.spec.loader`` turns YAML / dicts into them
and reports every problem (the graph rules are in ``archbench.spec.rules``); ``NeckSpec.to_dict``
writes the exact form the loader reads, so ``load(dump(spec)) == spec``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from archbench.errors import UserError

#: The pyramid levels (P3..P7, EfficientDet's) that built-in necks are generated over and that the
#: scaling presets build; a neck and the model config it is built at must agree on them.
DEFAULT_LEVELS = (3, 4, 5, 6, 7)
FUSE_TYPES = ("sum", "weighted", "softmax", "concat", "attention")
#: Fusions that combine inputs with learned or data-dependent weights and need >= 2 inputs.
MULTI_INPUT_FUSES = ("weighted", "softmax", "concat", "attention")
OP_TYPES = ("sepconv", "conv", "none")
NORM_TYPES = ("bn", "gn", "none")
ACT_TYPES = ("relu", "swish", "silu", "gelu", "none")
OP_ORDERS = ("act_first", "conv_first")
UP_MODES = ("nearest", "bilinear", "deconv")
DOWN_MODES = ("maxpool", "avgpool", "conv", "conv_act")
#: How a pooled jump of k levels down is made: ``chain`` (k 3x3/2 pools) or ``single`` (one 2**k pool).
DOWN_POOLS = ("chain", "single")
EXTRA_LEVEL_TYPES = ("pool", "conv", "lateral_pool", "lateral_conv_pool")
#: Extra-level kinds whose 1x1 projection of the last backbone level is shared with the cells.
LATERAL_EXTRA_LEVELS = ("lateral_pool", "lateral_conv_pool")
PROJECTION_MODES = ("shared", "per_edge")
ATTENTION_POOLS = ("max", "avg")
ATTENTION_GATES = ("coarser", "second")
_OVERRIDE_CHOICES: dict[str, tuple[str, ...]] = {
    "fuse": FUSE_TYPES,
    "op_type": OP_TYPES,
    "type": OP_TYPES,
    "norm": NORM_TYPES,
    "act": ACT_TYPES,
    "order": OP_ORDERS,
    "up": UP_MODES,
    "down": DOWN_MODES,
    "down_pool": DOWN_POOLS,
    "extra_levels": EXTRA_LEVEL_TYPES,
    "input_projection": PROJECTION_MODES,
    "attention_pool": ATTENTION_POOLS,
    "attention_gate": ATTENTION_GATES,
}

_INPUT_ID = re.compile(r"^in([1-9][0-9]*)$")  # exactly in<L>: "in03" is not an input


def input_level(ref: str) -> int | None:
    """The level of an input reference ``in<L>``, or None if ``ref`` is not one."""
    m = _INPUT_ID.match(ref)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class OpSpec:
    """What a node does after fusing its inputs.

    type: ``sepconv`` (depthwise k x k + pointwise 1x1), ``conv`` (dense k x k) or ``none``.
    order: ``act_first`` is EfficientDet's act -> conv -> norm; ``conv_first`` is the classic
    conv -> norm -> act. bias: a conv bias even when a norm follows (the TF EfficientDet
    models carry it, and so do their parameter counts); it also applies to the 1x1
    projections and to the ``pool`` extra-level stem (the ``conv`` stem always has a bias and no norm).
    convs: how many k x k convs (each with its norm) the op stacks, the activation between them;
    ``convs: 2`` with ``residual`` on a one-input node is a ResNet BasicBlock (DLA's block).
    """

    type: str = "conv"
    kernel: int = 3
    norm: str = "bn"
    act: str = "relu"
    order: str = "conv_first"
    bias: bool = False
    convs: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The YAML form; ``convs`` only when not 1, so older specs keep their hash."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "convs"}
        if self.convs != 1:
            out["convs"] = self.convs
        return out

    def merged(self, partial: dict[str, Any] | None) -> OpSpec:
        """This op with the fields of ``partial`` (a node-level override) replacing its own."""
        return replace(self, **partial) if partial else self


@dataclass(frozen=True)
class ResampleSpec:
    """How an edge crossing levels is resampled: up to the target's exact size, down by 2**k.

    ``down_pool`` shapes a pooled jump of k levels down (``down: maxpool`` or ``avgpool``; a
    ``conv`` or ``conv_act`` jump is always k 3x3/2 convs): ``chain`` is k 3x3 stride-2 pools with padding 1
    (EfficientDet); ``single`` is one pool with kernel = stride = 2**k and TF's ``same`` padding
    (NAS-FPN in TF Model Garden and mmdetection).
    """

    up: str = "nearest"
    down: str = "maxpool"
    down_pool: str = "chain"

    def to_dict(self) -> dict[str, str]:
        """The YAML form; ``down_pool`` only when not the default, so older specs keep their hash."""
        out = {"up": self.up, "down": self.down}
        if self.down_pool != ResampleSpec.down_pool:
            out["down_pool"] = self.down_pool
        return out


@dataclass(frozen=True)
class AttentionSpec:
    """NAS-FPN's global-pooling attention fusion of a node's first two inputs a, b.

    out = g + o * sigmoid(pool(g)) (+ any further inputs, summed), where ``g`` is the gating
    input and ``o`` the other one. ``gate: coarser`` takes g = the input from the coarser level
    and ``pool: max`` (the TensorFlow reference); ``gate: second`` with ``pool: avg`` is
    mmdetection's GlobalPoolingCell.
    """

    pool: str = "max"
    gate: str = "coarser"


@dataclass(frozen=True)
class NodeSpec:
    """One fusion node: resample + project each input to (level, width), fuse, apply the op.

    ``fuse`` and ``op`` are None when the spec-wide default applies; ``op`` may name only the
    fields it changes (e.g. ``{kernel: 1}``). ``residual`` adds the node's first input
    (resampled and projected) after the op's norm: before the activation in ``conv_first``
    order, at the very end in ``act_first`` order.
    """

    id: str
    level: int
    inputs: tuple[str, ...]
    fuse: str | None = None
    op: dict[str, Any] | None = None
    residual: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "level": self.level, "inputs": list(self.inputs)}
        if self.fuse is not None:
            out["fuse"] = self.fuse
        if self.op:
            out["op"] = dict(self.op)
        if self.residual:
            out["residual"] = True
        return out


@dataclass(frozen=True)
class NeckSpec:
    """A whole topology: spec-wide defaults, the node DAG and the output map.

    ``levels`` is a contiguous ascending range of pyramid levels (level L has stride 2**L).
    ``extra_levels`` says how levels past the backbone's last one are made: ``pool``
    (EfficientDet: 1x1 conv + norm when channels differ, then 3x3/2 max-pools), ``conv``
    (RetinaNet: 3x3 stride-2 convs, ReLU between them), ``lateral_pool`` (TF NAS-FPN: the last
    backbone level's 1x1 conv + norm projection becomes that level's input, shared with the cells,
    and each extra level is a 2x2/2 max-pool of the one before) or ``lateral_conv_pool``
    (mmdetection NAS-FPN: the same shared projection, then per extra level its own 1x1 conv + norm
    and a 2x2/2 max-pool). ``input_projection`` is ``shared``
    (one 1x1 projection per input feature, reused by all its consumers) or ``per_edge``
    (EfficientDet: a separate projection on every edge out of a backbone feature).
    ``family`` records the generator and arguments that produced a built-in spec.
    """

    name: str
    levels: tuple[int, ...]
    nodes: tuple[NodeSpec, ...]
    outputs: dict[int, str]
    description: str = ""
    fuse: str = "sum"
    op: OpSpec = field(default_factory=OpSpec)
    resample: ResampleSpec = field(default_factory=ResampleSpec)
    attention: AttentionSpec = field(default_factory=AttentionSpec)
    extra_levels: str = "pool"
    input_projection: str = "shared"
    repeat: bool = True
    family: dict[str, Any] | None = None

    @property
    def min_level(self) -> int:
        return self.levels[0]

    @property
    def max_level(self) -> int:
        return self.levels[-1]

    def node(self, node_id: str) -> NodeSpec:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def level_of(self, ref: str) -> int:
        """Level of an input reference ``in<L>`` or of a node id."""
        lvl = input_level(ref)
        return lvl if lvl is not None else self.node(ref).level

    def node_fuse(self, node: NodeSpec) -> str:
        """The fusion a node actually uses; single-input nodes fuse nothing (``sum`` of one)."""
        if len(node.inputs) < 2:
            return "sum"
        return node.fuse or self.fuse

    def node_op(self, node: NodeSpec) -> OpSpec:
        return self.op.merged(node.op)

    def with_overrides(self, **defaults: Any) -> NeckSpec:
        """A copy whose spec-wide defaults are replaced.

        Keys: ``fuse``, ``extra_levels``, ``input_projection``, ``repeat``, ``up``, ``down``, ``down_pool``,
        ``attention_pool``, ``attention_gate`` and any ``OpSpec`` field (``op_type`` or ``type``,
        ``kernel``, ``norm``, ``act``, ``order``, ``bias``, ``convs``). Values of None are ignored; other
        values are checked against the same choices as spec files (``UserError`` otherwise).
        Node-level settings stay: they are part of the topology (NAS-FPN's sum vs attention cells).
        """
        d = {k: v for k, v in defaults.items() if v is not None}
        for key, value in d.items():
            allowed = _OVERRIDE_CHOICES.get(key)
            if allowed is not None and value not in allowed:
                raise UserError(f"override {key}={value!r}: choose one of {', '.join(allowed)}")
        if "kernel" in d and (not isinstance(d["kernel"], int) or d["kernel"] < 1 or d["kernel"] % 2 == 0):
            raise UserError(f"override kernel={d['kernel']!r}: kernels are odd positive integers")
        if "convs" in d and (not isinstance(d["convs"], int) or isinstance(d["convs"], bool) or d["convs"] < 1):
            raise UserError(f"override convs={d['convs']!r}: convs is a positive integer")
        op_fields = {f.name for f in fields(OpSpec)}
        op_changes = {("type" if k == "op_type" else k): d.pop(k) for k in list(d) if k in op_fields | {"op_type"}}
        res_changes = {k: d.pop(k) for k in ("up", "down", "down_pool") if k in d}
        att_changes = {k.removeprefix("attention_"): d.pop(k) for k in ("attention_pool", "attention_gate") if k in d}
        top = {k: d.pop(k) for k in ("fuse", "extra_levels", "input_projection", "repeat") if k in d}
        if d:
            raise TypeError(f"unknown spec override(s): {', '.join(sorted(d))}")
        return replace(
            self,
            op=replace(self.op, **op_changes),
            resample=replace(self.resample, **res_changes),
            attention=replace(self.attention, **att_changes),
            **top,
        )

    def to_dict(self) -> dict[str, Any]:
        """The YAML-ready form; every field is written so a reload is exact."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.family is not None:
            out["family"] = dict(self.family)
        out.update(
            {
                "levels": list(self.levels),
                "repeat": self.repeat,
                "fuse": self.fuse,
                "op": self.op.to_dict(),
                "resample": self.resample.to_dict(),
                "attention": {"pool": self.attention.pool, "gate": self.attention.gate},
                "extra_levels": self.extra_levels,
                "input_projection": self.input_projection,
                "nodes": [n.to_dict() for n in self.nodes],
                "outputs": {int(k): v for k, v in sorted(self.outputs.items())},
            }
        )
        return out

    def spec_hash(self) -> str:
        """Stable 16-hex-digit hash of the spec as written, minus its name, description and family.

        A renamed copy of a topology hashes the same. Everything else written counts, node order
        included (it fixes the execution order), even settings the nodes happen not to use.
        """
        d = self.to_dict()
        for k in ("name", "description", "family"):
            d.pop(k, None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
