"""Backbone weights: timm's pretrained download (failing fast when offline) or a local file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
from torch import nn

from archbench.errors import UserError

HUB_HOST = "huggingface.co"


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the weights hub answers a TCP connect within ``timeout`` seconds."""
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def prepare_pretrained_download(backbone: str) -> None:
    """Make timm's pretrained load fail in a fraction of a second instead of retrying for ~47 s offline.

    Offline, huggingface_hub is switched to offline mode so weights already in the local cache
    still load; anything else fails at once. (Setting HF_HUB_OFFLINE in the environment is not
    enough after huggingface_hub was imported: it reads the variable at import time.)
    """
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            import huggingface_hub.constants as hf_constants

            hf_constants.HF_HUB_OFFLINE = True
        except ImportError:  # timm without the hub: nothing to switch off
            pass


def offline_error(backbone: str, exc: Exception) -> UserError:
    return UserError(
        f"--pretrained: could not load timm's pretrained weights for {backbone!r}: {HUB_HOST} is not reachable "
        f"from this machine and the weights are not in the local cache ({type(exc).__name__}). Train from "
        "scratch (drop --pretrained), or pass --backbone-weights FILE with a state dict saved from "
        f"timm.create_model({backbone!r}, pretrained=True) on a machine that is online."
    )


def load_backbone_weights(body: nn.Module, path: str | Path) -> dict[str, int]:
    """Load a local state dict (full classifier checkpoints are fine) into a features_only backbone.

    Keys that the feature model lacks (classifier, final conv head) are ignored; a file matching
    no key at all, or with mismatched shapes, is a ``UserError`` naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--backbone-weights {p}: no such file")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any unreadable file is the user's to fix)
        raise UserError(f"--backbone-weights {p}: not a readable torch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = body.state_dict()
    usable = {k: v for k, v in state.items() if k in own}
    bad = [k for k, v in usable.items() if tuple(v.shape) != tuple(own[k].shape)]
    if not usable or bad:
        why = f"shape mismatch at {bad[:3]}" if bad else "no parameter names match the backbone"
        raise UserError(f"--backbone-weights {p}: {why}; is it a state dict of the same timm model?")
    body.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "ignored": len(state) - len(usable), "missing": len(own) - len(usable)}
