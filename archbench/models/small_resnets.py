"""Narrow ResNet-10 backbones for the CPU proxy preset, registered in timm's model registry.

timm's smallest ResNet (``resnet10t``, 4.9M params) is far too wide for a detector that must
train in minutes on two CPU cores, and its mobile nets (lcnet, mobilenetv3) are depthwise
convolutions that run at a few GFLOP/s on a CPU. ``resnet10t_c{C}`` is resnet10t (one basic
block per stage, tiered 3-conv stem, average-pool downsampling) with stage widths
``(C, 2C, 4C, 8C)`` and a stem of ``(3C/8, C/2, C)``; dense 3x3 convolutions make it fast
per FLOP on a CPU. Registering the names (instead of passing ``channels=`` at every call)
keeps a backbone a plain string in model configs, records and specs, and gives the
``features_only`` / ``feature_info`` interface of every timm model.

They have no pretrained weights: ``--pretrained`` refuses them (see
:func:`archbench.models.weights.prepare_pretrained_download`).

Measured (bifpn, proxy phi 0, 128 px, batch 16, 2 CPU threads): see docs/running.md.
"""

from __future__ import annotations

from collections.abc import Callable

from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet, _create_resnet

#: Stage width C of each registered model: resnet10t_c16, resnet10t_c24, ...
STAGE_WIDTHS = (16, 24, 32, 48)

#: timm reads a module's ``default_cfgs`` when registering; these models have no weights.
default_cfgs = {
    f"resnet10t_c{c}": {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, 128, 128),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "conv1.0",
        "classifier": "fc",
    }
    for c in STAGE_WIDTHS
}


def _entrypoint(c: int) -> Callable[..., ResNet]:
    def build(pretrained: bool = False, **kwargs) -> ResNet:
        args = dict(
            block=BasicBlock,
            layers=(1, 1, 1, 1),
            channels=(c, 2 * c, 4 * c, 8 * c),
            stem_width=c // 2,
            stem_type="deep_tiered",
            avg_down=True,
        )
        return _create_resnet(build.__name__, pretrained, **dict(args, **kwargs))

    build.__name__ = build.__qualname__ = f"resnet10t_c{c}"
    build.__doc__ = f"ResNet-10-T with stage widths ({c}, {2 * c}, {4 * c}, {8 * c}); no pretrained weights."
    return build


for _c in STAGE_WIDTHS:
    register_model(_entrypoint(_c))
