"""Shared test helpers."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest.mock import patch

import pytest
import torch

from archbench.train.det_trainer import DetectionTrainer


def pyramid(h: int, w: int, channels=(40, 112, 320), batch: int = 2, first_level: int = 3) -> list[torch.Tensor]:
    """Random backbone features for an h x w image, sized like a ceil-halving backbone."""
    out = []
    for i, c in enumerate(channels):
        s = 2 ** (first_level + i)
        out.append(torch.randn(batch, c, -(-h // s), -(-w // s)))
    return out


@contextmanager
def killed_after_first_epoch() -> Iterator[None]:
    """Inside the block a detection run stops with KeyboardInterrupt when epoch 1 begins, as if its process
    were killed right after writing the epoch-1 checkpoint; the block expects that interrupt."""
    real_epoch = DetectionTrainer.train_epoch

    def train_epoch(self, on_step=None):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self, on_step)

    with patch.object(DetectionTrainer, "train_epoch", train_epoch), pytest.raises(KeyboardInterrupt):
        yield


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run the ``archbench`` entry point in-process (as the console script does), capturing output.

    In-process keeps the suite fast (no torch import per call); ``test_cli_specs`` also runs the
    real console script once to check that no traceback escapes.
    """
    from archbench import cli

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err), patch.object(sys, "argv", ["archbench", *args]):
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


#: The classes of :func:`make_segfolder`: a red square and a green bar on a dark background.
SEG_CLASSES = ("background", "red_square", "green_bar")


def make_segfolder(
    root, *, n_train: int = 8, n_val: int = 4, size: tuple[int, int] = (32, 32), layout: str = "folders", seed: int = 0
):
    """Write a tiny, easy segmentation folder: images and masks with the same objects, classes.yaml.

    Each image (``size`` = (w, h) px, dark noise) holds a red square (class 1, half the shorter side)
    and a green bar (class 2, a sixth of the height thick) at random places, and a 3x3 ignore (255) patch
    in the top-left corner. ``layout``: ``folders`` (images/{split}/, masks/{split}/) or ``lists``
    (images/, masks/, {split}.txt). Returns ``root``.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text("names: [" + ", ".join(SEG_CLASSES) + "]\n")
    for split, n in (("train", n_train), ("val", n_val)):
        sub = split if layout == "folders" else ""
        (root / "images" / sub).mkdir(parents=True, exist_ok=True)
        (root / "masks" / sub).mkdir(parents=True, exist_ok=True)
        names = []
        for i in range(n):
            image = rng.integers(0, 50, (h, w, 3)).astype(np.uint8)
            mask = np.zeros((h, w), np.uint8)
            s, t = max(4, min(w, h) // 2), max(3, h // 6)
            y, x = rng.integers(0, h - s), rng.integers(0, w - s)
            image[y : y + s, x : x + s] = (220, 30, 30)
            mask[y : y + s, x : x + s] = 1
            y, x = rng.integers(0, h - t), rng.integers(0, w - s)
            image[y : y + t, x : x + s] = (30, 220, 30)
            mask[y : y + t, x : x + s] = 2
            mask[:3, :3] = 255
            name = f"{split}_{i:03d}"
            Image.fromarray(image).save(root / "images" / sub / f"{name}.png")
            Image.fromarray(mask).save(root / "masks" / sub / f"{name}.png")
            names.append(name)
        if layout == "lists":
            (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


#: One comparison group's keys (``aggregate.GROUP_KEYS``) as the board's tests build their rows by hand.
ONE_GROUP = {
    "task": "det",
    "dataset": "synthetic",
    "preset": "proxy",
    "terms": "efficientdet",
    "epochs": 8,
    "device": "cpu",
    "amp": "off",
}
