"""Compile a topology spec into an ``nn.Module``.

``compile_neck(spec, in_channels, width, repeats)`` returns a ``GraphNeck``:

    backbone features [B, C_l, H_l, W_l] for levels lo..b   (b <= the spec's top level)
      -> extra-level stem: levels b+1..hi, [B, width, ceil(H_b / 2**k), ...]; for the ``lateral_*``
         kinds it also replaces level b by its 1x1 projection to the width, shared with the cells
      -> D cells (no weight sharing), each mapping level l -> [B, width, H_l, W_l]
      -> list of hi - lo + 1 tensors, ordered by level

Each cell is compiled once into a flat program of steps (project, resample, node). Every
intermediate tensor has a key naming what it is (``in4>p``: in4 projected; ``td5@4``: td5
resampled to level 4), and a step is emitted only the first time its key is needed, so an
input consumed by several nodes is projected and resampled once (EfficientDet's per-edge
projections, asked for with ``input_projection: per_edge``, are distinct keys by design). A
tensor is dropped as soon as the last step that reads it is done with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archbench.neck.fusion import make_fusion
from archbench.neck.layers import ConvDown, ConvNorm, DeconvUp, ExtraLevels, NodeOp, PoolDown, upsample_to
from archbench.spec.graph import execution_order, live_nodes
from archbench.spec.schema import NeckSpec, NodeSpec, input_level


class FusionNode(nn.Module):
    """fuse(inputs) -> op (+ first input as residual): list of n [B, width, H, W] -> [B, width, H, W].

    ``xs`` is emptied once fused, so that inputs no one else holds are freed before the op runs.
    """

    def __init__(self, fusion: nn.Module, op: NodeOp, residual: bool) -> None:
        super().__init__()
        self.fusion, self.op, self.residual = fusion, op, residual

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        fused = self.fusion(xs)
        residual = xs[0] if self.residual else None
        xs.clear()
        return self.op(fused, residual)


@dataclass(frozen=True)
class _Step:
    """One instruction of a cell program: ``env[out] = f(env[args...])``."""

    kind: str  # "proj" | "up" | "down" | "node"
    out: str
    args: tuple[str, ...]
    module: str = ""  # key into the cell's ModuleDict for proj/down/node (and up, when learned)


class Cell(nn.Module):
    """One application of the spec's node graph: list of (hi-lo+1) tensors -> same, every output at ``width``.

    ``in_channels[i]`` is the channel count of the i-th input (level lo + i); only the first
    cell sees backbone channels, later cells see ``width`` everywhere.
    """

    def __init__(self, spec: NeckSpec, in_channels: Sequence[int], width: int) -> None:
        super().__init__()
        self.levels = spec.levels
        self.up_mode = spec.resample.up
        self.mods = nn.ModuleDict()
        self.program: list[_Step] = []
        self._spec, self._width = spec, width
        self._channels = {f"in{lvl}": c for lvl, c in zip(spec.levels, in_channels)}
        self._known: set[str] = set(self._channels)
        for node in execution_order(spec):
            self._compile_node(node)
        self.output_keys = [self._edge(spec.outputs[lvl], lvl, owner=f"out{lvl}") for lvl in spec.levels]
        self.release = self._last_reads()
        del self._spec, self._channels, self._known

    # --- compilation -------------------------------------------------------------------------
    def _emit(self, step: _Step, module: nn.Module | None = None) -> str:
        if step.out not in self._known:
            if module is not None and step.module not in self.mods:
                self.mods[step.module] = module
            self.program.append(step)
            self._known.add(step.out)
        return step.out

    def _edge(self, ref: str, level: int, owner: str) -> str:
        """Key of ``ref`` brought to ``level`` and ``width`` for consumer ``owner`` (emitting steps)."""
        spec, width = self._spec, self._width
        key = ref
        channels = self._channels.get(ref, width)
        if channels != width:
            per_edge = spec.input_projection == "per_edge" and input_level(ref) is not None
            name = f"proj_{ref}_{owner}" if per_edge else f"proj_{ref}"
            key = self._emit(
                _Step("proj", f"{ref}>{owner}" if per_edge else f"{ref}>p", (key,), name),
                ConvNorm(channels, width, 1, 1, spec.op.norm, spec.op.bias),
            )
        src_level = spec.level_of(ref)
        if src_level > level and spec.resample.up == "deconv":
            up = DeconvUp(width, src_level - level)
            key = self._emit(_Step("up", f"{key}@{level}", (key, f"in{level}"), f"up_{key}@{level}"), up)
        elif src_level > level:
            key = self._emit(_Step("up", f"{key}@{level}", (key, f"in{level}")))
        elif src_level < level:
            steps = level - src_level
            down_key = f"down_{key}@{level}"  # ids cannot contain '>' or '@': names never collide
            module = (
                ConvDown(width, width, steps, spec.op, act_last=spec.resample.down == "conv_act")
                if spec.resample.down in ("conv", "conv_act")
                else PoolDown(steps, spec.resample.down, single=spec.resample.down_pool == "single")
            )
            key = self._emit(_Step("down", f"{key}@{level}", (key, f"in{level}"), down_key), module)
        return key

    def _compile_node(self, node: NodeSpec) -> None:
        spec, width = self._spec, self._width
        args = tuple(self._edge(ref, node.level, node.id) for ref in node.inputs)
        op = spec.node_op(node)
        kind = spec.node_fuse(node)
        gate = 0
        if kind == "attention":
            first, second = (spec.level_of(r) for r in node.inputs[:2])
            gate = (1 if second > first else 0) if spec.attention.gate == "coarser" else 1
        fusion, fused_channels = make_fusion(
            kind,
            len(args),
            width,
            has_op=op.type != "none",
            gate=gate,
            pool=spec.attention.pool,
            norm=op.norm,
            bias=op.bias,
        )
        # a fusion of two or more inputs makes a new tensor, which the op may then overwrite
        module = FusionNode(fusion, NodeOp(fused_channels, width, op, owns_input=len(args) > 1), node.residual)
        self._emit(_Step("node", node.id, args, f"node_{node.id}"), module)
        self._channels[node.id] = width

    def _last_reads(self) -> list[tuple[str, ...]]:
        """Per step, the keys no later step and no output reads: dropped as the step starts, so an
        intermediate tensor's memory is reused as soon as possible instead of at the cell's end."""
        last = {key: i for i, step in enumerate(self.program) for key in step.args}
        release: list[list[str]] = [[] for _ in self.program]
        for key, i in last.items():
            if key not in self.output_keys:
                release[i].append(key)
        return [tuple(keys) for keys in release]

    # --- execution ---------------------------------------------------------------------------
    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Runs the program on ``xs``, which it empties: each input is then dropped after its last reader."""
        env: dict[str, torch.Tensor] = {f"in{lvl}": x for lvl, x in zip(self.levels, xs)}
        xs.clear()
        mods = self.mods
        for step, release in zip(self.program, self.release):
            args = [env[a] for a in step.args]
            for key in release:  # before the step runs: it may free them as soon as it is done with them
                del env[key]
            if step.kind == "node":
                env[step.out] = mods[step.module](args)
            elif step.kind == "proj":
                env[step.out] = mods[step.module](*args)
            elif step.kind == "up" and not step.module:
                env[step.out] = upsample_to(args[0], args[1], self.up_mode)
            else:
                env[step.out] = mods[step.module](*args)
        return [env[k] for k in self.output_keys]


class GraphNeck(nn.Module):
    """A compiled neck: backbone features for levels lo..lo+len(in_channels)-1 -> one tensor per spec level.

    Input: list of [B, in_channels[i], H_i, W_i] (level lo + i, H_i ~= H_image / 2**(lo+i)).
    Output: list of [B, width, H_l, W_l] for l = lo..hi, the extra levels halving (ceil) the last
    backbone level. ``out_levels`` / ``out_channels`` describe it (like timm's ``feature_info``).
    """

    def __init__(self, spec: NeckSpec, in_channels: Sequence[int], width: int, repeats: int = 1) -> None:
        super().__init__()
        n_in = len(in_channels)
        if not 1 <= n_in <= len(spec.levels):
            raise ValueError(f"{spec.name}: got {n_in} input features for levels {list(spec.levels)}")
        if width < 1 or repeats < 1:
            raise ValueError(f"{spec.name}: width and repeats must be >= 1 (got {width}, {repeats})")
        self.spec = spec
        self.width = width
        self.repeats = repeats if spec.repeat else 1
        self.out_levels = list(spec.levels)
        self.out_channels = width
        n_extra = len(spec.levels) - n_in
        self.extra = (
            ExtraLevels(spec.extra_levels, in_channels[-1], width, n_extra, spec.op.norm, spec.op.bias)
            if n_extra
            else None
        )
        channels = list(in_channels) + [width] * n_extra
        if self.extra is not None and self.extra.shares_lateral:  # the stem returns level b projected
            channels[n_in - 1] = width
        self.cells = nn.ModuleList()
        for _ in range(self.repeats):
            self.cells.append(Cell(spec, channels, width))
            channels = [width] * len(spec.levels)

    @property
    def dead_nodes(self) -> list[str]:
        """Ids of the spec's nodes that feed no output (the spec rules warn about them): computed, but their
        parameters never get a gradient."""
        live = live_nodes(self.spec)
        return [n.id for n in self.spec.nodes if n.id not in live]

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = list(features)
        if self.extra is not None:
            xs[-1], extra = self.extra(xs[-1])
            xs += extra
        for cell in self.cells:
            xs = cell(xs)
        return xs


def compile_neck(
    spec: NeckSpec, in_channels: Sequence[int], width: int, repeats: int = 1, **overrides: Any
) -> GraphNeck:
    """Build the neck of ``spec`` for backbone channels ``in_channels`` (levels from spec.min_level).

    ``overrides`` replace spec-wide defaults for comparisons on equal terms, e.g.
    ``op_type="sepconv", act="swish", fuse="sum"`` (see ``NeckSpec.with_overrides``).
    """
    return GraphNeck(spec.with_overrides(**overrides) if overrides else spec, in_channels, width, repeats)
