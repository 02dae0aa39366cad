"""Equal terms: spec-wide op settings imposed on every neck of a comparison, named or given one by one.

A neck's topology (which levels feed which node, how a node fuses) is what a benchmark of necks compares;
the op each node runs after fusing (dense or separable conv, norm, activation, their order) is not, yet
every built-in brings its paper's own. Under a *protocol* every neck runs the same op, so a difference on
the board is the topology's. The protocols:

- ``native``: each spec's own ops (every record made before issue 18);
- ``efficientdet``: EfficientDet's feature-network comparison (Table 5: the same backbone, head and
  training for every network, and the BiFPN node's op for all): a separable 3x3 conv, batch norm and
  swish, the activation first (act -> conv -> norm).

``--op / --act / --norm / --fuse`` (``archbench run``, ``search``, ``profile``) change single settings,
alone or on top of a protocol. Node-level settings stay: they are part of the topology (NAS-FPN's sum
vs attention cells, DLA's two-conv blocks). A run under terms trains the spec with the overrides applied
(its record holds that spec and its hash); the configuration names the terms and their overrides, so it is
part of the config hash, and the board groups runs by :func:`terms_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from archbench.errors import UserError
from archbench.spec.schema import ACT_TYPES, FUSE_TYPES, NORM_TYPES, OP_TYPES

#: The terms of a run without overrides: each neck with its own ops.
NATIVE = "native"
#: Named protocols: spec-wide overrides (``NeckSpec.with_overrides`` keys) every neck is compiled with.
PROTOCOLS: dict[str, dict[str, Any]] = {
    NATIVE: {},
    "efficientdet": {"op_type": "sepconv", "kernel": 3, "norm": "bn", "act": "swish", "order": "act_first"},
}
#: The single-setting flags, their override key and allowed values.
_FLAGS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("--op", "op_type", OP_TYPES),
    ("--fuse", "fuse", FUSE_TYPES),
    ("--act", "act", ACT_TYPES),
    ("--norm", "norm", NORM_TYPES),
)


@dataclass(frozen=True)
class Terms:
    """A protocol's name and the spec-wide overrides it imposes (empty for ``native``)."""

    protocol: str = NATIVE
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def native(self) -> bool:
        return not self.overrides

    @property
    def label(self) -> str:
        """What the board and records call these terms: the protocol's name, or its name (when not native) and
        the single overrides on top, e.g. ``efficientdet+act=relu`` or ``op_type=sepconv,act=swish``."""
        extra = {k: v for k, v in self.overrides.items() if PROTOCOLS.get(self.protocol, {}).get(k) != v}
        if not extra:
            return self.protocol
        singles = ",".join(f"{k}={v}" for k, v in sorted(extra.items()))
        return singles if self.protocol == NATIVE else f"{self.protocol}+{singles}"

    def cli_flags(self) -> list[str]:
        """The command-line flags that give these terms: ``--terms`` (unless native) and each single setting that
        differs from the protocol's, e.g. ``["--terms", "efficientdet", "--act", "relu"]``."""
        protocol = PROTOCOLS.get(self.protocol, {})
        flags = [] if self.protocol == NATIVE else ["--terms", self.protocol]
        for flag, key, _ in _FLAGS:
            if key in self.overrides and protocol.get(key) != self.overrides[key]:
                flags += [flag, str(self.overrides[key])]
        return flags

    def to_config(self) -> dict[str, Any]:
        """The configuration's part (``terms`` and ``terms_overrides``); empty for native terms, so runs without
        overrides keep the config hash they always had."""
        return {} if self.native else {"terms": self.label, "terms_overrides": dict(sorted(self.overrides.items()))}


def resolve_terms(
    protocol: str | None = None,
    *,
    op: str | None = None,
    fuse: str | None = None,
    act: str | None = None,
    norm: str | None = None,
) -> Terms:
    """The terms of ``--terms`` and the single-setting flags (a flag wins over the protocol's value).

    UserError naming the flag for an unknown protocol or value.
    """
    name = NATIVE if protocol is None else protocol
    if name not in PROTOCOLS:
        raise UserError(
            f"--terms {protocol!r}: choose one of {', '.join(PROTOCOLS)} (native: each neck's own ops; "
            "efficientdet: separable 3x3 conv, BN, swish, activation first, for every neck)"
        )
    overrides = dict(PROTOCOLS[name])
    for (flag, key, allowed), value in zip(_FLAGS, (op, fuse, act, norm)):
        if value is None:
            continue
        if value not in allowed:
            raise UserError(f"{flag} {value!r}: choose one of {', '.join(allowed)}")
        overrides[key] = value
    return Terms(name, overrides)


def terms_of(config: Mapping[str, Any] | None) -> str:
    """The terms a run's configuration was trained under: its ``terms``, or :data:`NATIVE` when it has none
    (each neck with its own ops: every record made before issue 18)."""
    return (config or {}).get("terms") or NATIVE
