"""glibc malloc settings of a training process (archbench.train.allocator): what they change, and what not."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys

import pytest
import torch

from archbench.train.allocator import heap_range, tune_malloc
from archbench.train.trainer import TrainConfig

glibc_only = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="the settings are glibc's (Linux)"
)

MAPS = """\
55d0c0a00000-55d0c0a21000 r--p 00000000 fe:01 123 /usr/bin/python3.11
55d0c1e4f000-55d0c3a9c000 rw-p 00000000 00:00 0                          [heap]
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0
7ffd5b5e1000-7ffd5b602000 rw-p 00000000 00:00 0                          [stack]
"""


def test_heap_range_reads_the_heap_line() -> None:
    assert heap_range(MAPS) == (0x55D0C1E4F000, 0x55D0C3A9C000)
    assert heap_range(MAPS.replace("[heap]", "")) is None


def test_tune_malloc_is_a_speed_setting() -> None:
    assert TrainConfig().tune_malloc and "tune_malloc" not in TrainConfig().to_dict()
    assert TrainConfig(tune_malloc=False).to_dict() == TrainConfig().to_dict()


@glibc_only
def test_freed_blocks_stay_mapped_and_the_heap_asks_for_huge_pages() -> None:
    assert tune_malloc()
    block = 8 * 2**20 // 4  # float32 elements of 8 MiB: above glibc's default mmap threshold
    torch.empty(block).fill_(1.0)  # the heap holds such a block once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.empty(block).fill_(1.0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 200  # glibc's defaults unmap each freed block: 5 x 2048 faults on 4 KiB pages
    with open("/proc/self/smaps") as smaps:
        text = smaps.read()
    heap = text[text.index("[heap]") :]
    flags = next(line for line in heap.splitlines() if line.startswith("VmFlags:"))
    assert " hg" in flags  # madvise(MADV_HUGEPAGE) took


#: A few channels-last conv + BatchNorm training steps with fused AdamW; prints a digest of the final weights.
STEPS = """
import hashlib, json, sys, torch
from archbench.train.allocator import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc()
torch.manual_seed(0)
torch.set_num_threads(2)
nn = torch.nn
net = nn.Sequential(nn.Conv2d(3, 9, 3, 2, 1), nn.BatchNorm2d(9), nn.ReLU(), nn.Conv2d(9, 4, 3))
net = net.to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(net.parameters(), lr=1e-2, fused=True)
x = torch.randn(16, 3, 96, 96).contiguous(memory_format=torch.channels_last)
for _ in range(3):
    opt.zero_grad(set_to_none=True)
    net(x).square().mean().backward()
    opt.step()
print(json.dumps(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()))
"""


@glibc_only
def test_training_steps_are_the_same_bit_for_bit_with_the_settings() -> None:
    digests = {
        arm: json.loads(
            subprocess.run([sys.executable, "-c", STEPS, arm], capture_output=True, text=True, check=True).stdout
        )
        for arm in ("default", "tuned")
    }
    assert digests["default"] == digests["tuned"]
