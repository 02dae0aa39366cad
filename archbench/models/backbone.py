"""timm backbones that return the features of chosen pyramid levels, selected by stride.

timm's ``out_indices`` are each model's own stage numbers (dla34's differ from efficientnet's),
so levels are chosen from ``feature_info.reduction()``: level L is the feature of stride 2**L.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch
from torch import nn

from archbench.errors import UserError
from archbench.models import small_resnets  # noqa: F401 (registers resnet10t_c* in timm)
from archbench.models.weights import offline_error, prepare_pretrained_download
from archbench.neck.layers import out_of_place_where_cloned


class Backbone(nn.Module):
    """image [B, 3, H, W] -> list of [B, C_l, ~H/2**l, ~W/2**l] for l in ``levels`` (ascending).

    ``channels`` lists C_l; only the stages needed for the deepest requested level are built.
    """

    def __init__(self, name: str, levels: Sequence[int] = (3, 4, 5), pretrained: bool = False) -> None:
        super().__init__()
        self.name, self.levels = name, list(levels)
        try:
            probe = timm.create_model(name, features_only=True, pretrained=False)
        except RuntimeError as exc:  # timm's "Unknown model" and features_only refusals
            raise UserError(f"backbone {name!r}: timm cannot build it with features_only ({exc})") from None
        probe_info: Any = probe.feature_info  # timm's FeatureInfo (nn.Module's attribute typing does not know it)
        reductions = probe_info.reduction()
        missing = [lvl for lvl in levels if 2**lvl not in reductions]
        if missing:
            raise UserError(
                f"backbone {name!r} has no features at level(s) {missing} "
                f"(its strides are {reductions}); choose levels among them"
            )
        # the last stage of each stride is the one to use when several share it
        positions = [max(i for i, r in enumerate(reductions) if r == 2**lvl) for lvl in levels]
        out_indices = tuple(probe_info.out_indices[i] for i in positions)
        if out_indices == tuple(probe_info.out_indices) and not pretrained:
            self.body = probe
        elif pretrained:
            if not timm.is_model_pretrained(name):
                raise UserError(
                    f"backbone {name!r} has no pretrained weights in timm; train it from scratch "
                    "(drop --pretrained) or pass --backbone-weights FILE"
                )
            prepare_pretrained_download(name)
            try:
                self.body = timm.create_model(name, features_only=True, pretrained=True, out_indices=out_indices)
            except Exception as exc:  # noqa: BLE001 (hub, network and cache errors all mean the same here)
                raise offline_error(name, exc) from None
        else:
            self.body = timm.create_model(name, features_only=True, out_indices=out_indices)
        out_of_place_where_cloned(self.body)  # timm builds its SiLUs in place: a clone per training step each
        body_info: Any = self.body.feature_info
        self.channels: list[int] = list(body_info.channels())

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(images))
