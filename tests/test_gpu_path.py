"""The CUDA path's decisions, each tested on the CPU: the kernels asked for, the device claimed, bf16 refused where it
is emulated, the device and rank checks. (Elsewhere: DDP with a spec's dead nodes in test_distributed, the loss
read on the host in batches in test_train_fast_path, CPU and GPU runs kept apart on the board in test_leaderboard,
one GPU per child of --jobs in test_parallel_sweep.)"""

from __future__ import annotations

import pytest
import torch

from archbench.cli.options import check_device
from archbench.errors import UserError
from archbench.runs.sweep import claim_device
from archbench.train.distributed import rank_gpu
from archbench.train.trainer import check_amp, configure_kernels


@pytest.fixture
def kernel_flags():
    """Give the process its kernel settings back after a test changes them."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def test_deterministic_mode_warns_where_cuda_has_no_deterministic_kernel(kernel_flags):
    configure_kernels(torch.device("cuda"), deterministic=True)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_cuda_runs_let_cudnn_pick_its_fastest_convolutions_unless_deterministic(kernel_flags):
    torch.backends.cudnn.benchmark = False
    configure_kernels(torch.device("cpu"), deterministic=False)
    assert not torch.backends.cudnn.benchmark
    configure_kernels(torch.device("cuda"), deterministic=False)
    assert torch.backends.cudnn.benchmark


def test_bf16_autocast_is_refused_on_a_gpu_that_only_emulates_it(monkeypatch):
    asked: list[bool] = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return including_emulation  # a pre-Ampere GPU: bf16 by emulation only

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-16GB")
    with pytest.raises(UserError, match="--amp bf16 on Tesla V100-SXM2-16GB: this GPU has no native bfloat16"):
        check_amp("bf16", torch.device("cuda"))
    assert asked == [False]
    check_amp("fp16", torch.device("cuda"))
    check_amp("bf16", torch.device("cpu"))


def test_a_run_claims_its_gpu_and_counts_its_own_peak_memory(monkeypatch):
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: calls.append(("reset_peak", str(d))))
    claim_device(torch.device("cuda:1"))
    claim_device(torch.device("cuda"))
    claim_device(torch.device("cpu"))
    assert calls == [("set_device", "cuda:1"), ("reset_peak", "cuda:1"), ("reset_peak", "cuda")]


@pytest.mark.parametrize(
    ("device", "count", "message"),
    [
        ("cuda:2", 2, "this machine has 2 CUDA device(s), cuda:0 to cuda:1"),
        ("cuda", 0, "no CUDA device is available on this machine"),
        ("gpu", 2, "give cpu, cuda (the current CUDA device) or cuda:N"),
        ("cuda:x", 2, "give cpu, cuda (the current CUDA device) or cuda:N"),
    ],
)
def test_a_device_the_machine_lacks_is_refused_before_any_run(device, count, message):
    with pytest.raises(UserError) as err:
        check_device(device, device_count=count)
    assert message in err.value.message
    check_device("cuda:1", device_count=2)
    check_device("cpu", device_count=0)


def test_a_rank_shown_one_gpu_trains_on_it():
    assert rank_gpu(1, 4) == 1  # torchrun: every rank sees every GPU of its machine
    assert rank_gpu(3, 1) == 0  # a launcher that shows each rank its own GPU alone
    with pytest.raises(UserError, match="local rank 3 has no GPU \\(2 visible\\)"):
        rank_gpu(3, 2)
