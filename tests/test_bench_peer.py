"""scripts/bench_peer.py: its effdet phases compute what DetBenchTrain computes, and it reports the ratios line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from timm.layers import DropPath

pytest.importorskip("effdet")

from scriptkit import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("channels_last", "drop_path"), [(False, None), (True, None), (True, 0.0)])
def test_effdet_phases_give_det_bench_train_loss(channels_last: bool, drop_path: float | None) -> None:
    bench = load_script("bench_peer")
    torch.manual_seed(0)
    peer = bench.Peer(64, bench.TrainConfig(batch_size=2), bench.fixed_batch(64, 2), channels_last, drop_path)
    assert peer.split_loss_error() == 0.0
    rates = [m.drop_prob for m in peer.model.backbone.modules() if isinstance(m, DropPath)]
    assert (max(rates, default=0.0) > 0) == (drop_path is None)  # the shipped config's stochastic depth, or none
    assert peer.images.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_bench_peer_prints_the_ratios_line_last() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            str(ROOT / "scripts" / "bench_peer.py"),
            "--sizes",
            "64",
            "--steps",
            "1",
            "--warmup",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    ).stdout
    assert re.fullmatch(r"ratios peer_64=\d+\.\d{3} peer_cl_64=\d+\.\d{3}", out.strip().splitlines()[-1])
    assert "effdet_cl_nodp" in out and "CPU capability" in out
