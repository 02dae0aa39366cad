"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

from archbench.data import synthetic


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    """A ``--data`` reference to a tiny generated COCO-format set: 16 train / 8 val images of 64 px, per module."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    synthetic.generate(root, n_train=16, n_val=8, size=64, workers=1)
    return f"coco:{root}"
