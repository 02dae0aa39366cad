"""One run over 2 processes (torchrun, gloo on the CPU) against the same run in one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from archbench.data import synthetic
from archbench.errors import UserError
from archbench.neck.compiler import compile_neck
from archbench.runs.records import load_records
from archbench.spec import load_spec_file
from archbench.train.distributed import DistContext

from helpers import make_segfolder, run_cli

COMMON = ["--neck", "fpn", "--phi", "0", "--epochs", "2", "--batch-size", "8"]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 -m archbench run ARGS`` (one CPU thread per rank)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "archbench",
        "run",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("task", ["seg", "det"])
def test_two_processes_match_one(tmp_path, task):
    if task == "seg":
        data = f"segfolder:{make_segfolder(tmp_path / 'd', n_train=16, n_val=6, size=(48, 40))}"
    else:
        synthetic.generate(tmp_path / "d", n_train=16, n_val=8, size=64, workers=1)
        data = f"coco:{tmp_path / 'd'}"
    args = [*COMMON, "--task", task, "--data", data]
    ddp = torchrun(*args, "--results", str(tmp_path / "ddp"))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_cli("run", *args, "--threads", "1", "--results", str(tmp_path / "single"))
    assert single.returncode == 0, single.stderr
    (files,) = [list((tmp_path / "ddp" / "runs").iterdir())]
    assert len(files) == 1  # rank 0 alone writes
    (d,), (s,) = ([r.to_dict() for r in load_records(tmp_path / folder)] for folder in ("ddp", "single"))
    assert d["distributed"] == {"world_size": 2, "backend": "gloo", "per_rank_batch": 4, "sync_batchnorm": False}
    assert d["config_hash"] == s["config_hash"] and d["steps"] == s["steps"] == 4
    assert not (tmp_path / "ddp" / "checkpoints" / d["config_hash"] / "last.pt").exists()
    # Same global batches; BatchNorm statistics are per rank (4 images instead of 8), so not bit-identical.
    for a, b in zip(d["epoch_losses"], s["epoch_losses"]):
        assert a == pytest.approx(b, rel=0.15)  # measured: within 9% at this tiny size
    main = "mIoU" if task == "seg" else "AR100"
    assert abs(d["metrics"][main] - s["metrics"][main]) < 0.1, (d["metrics"], s["metrics"])


def test_global_batch_must_split_evenly():
    with pytest.raises(UserError, match="--batch-size 7 is the global batch and must be divisible by the 2"):
        DistContext(rank=0, world_size=2).per_rank_batch(7)
    assert DistContext(rank=1, world_size=2).shard(5) == [1, 3]


def test_batchnorm_is_synchronised_under_cuda_ddp_only():
    import torch
    from timm.layers import BatchNormAct2d, SyncBatchNormAct

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), BatchNormAct2d(4), torch.nn.GroupNorm(2, 4)
        )

    for ctx in (DistContext(), DistContext(world_size=1, backend="nccl"), DistContext(world_size=2, backend="gloo")):
        plain = model()
        assert not ctx.syncs_batchnorm and ctx.convert_norms(plain) is plain
        assert type(plain[1]) is torch.nn.BatchNorm2d and type(plain[2]) is BatchNormAct2d
    cuda = DistContext(rank=1, world_size=2, local_rank=1, backend="nccl")
    plain = model()
    params, state = list(plain.parameters()), plain.state_dict()
    converted = cuda.convert_norms(plain)  # no GPU or process group needed to convert
    assert cuda.syncs_batchnorm and converted is plain  # children replaced in place
    assert type(plain[1]) is torch.nn.SyncBatchNorm and type(plain[2]) is SyncBatchNormAct
    assert type(plain[3]) is torch.nn.GroupNorm and isinstance(plain[2].act, torch.nn.ReLU)
    assert all(a is b for a, b in zip(plain.parameters(), params))  # an optimizer made before still trains them
    assert plain.state_dict().keys() == state.keys()  # checkpoints load either way


def _ddp_gradient(rank: int, world: int, init_file: str, out_file: str) -> None:
    """Rank ``rank``'s share of the batch through DDP; rank 0 saves the averaged gradient."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    ctx = DistContext(rank=rank, world_size=world, backend="gloo")
    x, labels = _uneven_batch()
    model = _tiny_model()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    mine = slice(rank * 4, rank * 4 + 4)
    total = F.cross_entropy(ddp(x[mine]), labels[mine], ignore_index=255, reduction="sum")
    (total / ctx.normaliser((labels[mine] != 255).sum())).backward()
    if rank == 0:
        torch.save(model.weight.grad, out_file)
    dist.destroy_process_group()


def _uneven_batch():
    import torch

    g = torch.Generator().manual_seed(0)
    x, labels = torch.randn(8, 3, generator=g), torch.randint(0, 2, (8,), generator=g)
    labels[1:4] = 255  # rank 0's half has 1 counted item, rank 1's half 4
    return x, labels


def _tiny_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def test_ddp_loss_normalisation_gives_the_single_process_gradient(tmp_path):
    import torch
    import torch.multiprocessing as mp
    import torch.nn.functional as F

    out = tmp_path / "grad.pt"
    mp.spawn(_ddp_gradient, args=(2, str(tmp_path / "init"), str(out)), nprocs=2)
    x, labels = _uneven_batch()
    model = _tiny_model()
    total = F.cross_entropy(model(x), labels, ignore_index=255, reduction="sum")
    (total / DistContext().normaliser((labels != 255).sum())).backward()
    torch.testing.assert_close(torch.load(out), model.weight.grad)  # per-rank means would be 2.5x off here


DEAD_NODE_SPEC = """\
name: fpn_with_a_dead_node
levels: [3, 4, 5, 6, 7]
fuse: sum
op: {type: conv, kernel: 3, norm: bn, act: relu}
nodes:
  - {id: td4, level: 4, inputs: [in4, in5]}
  - {id: td3, level: 3, inputs: [in3, td4]}
  - {id: unused, level: 5, inputs: [in5, td4]}
outputs: {3: td3, 4: td4, 5: in5, 6: in6, 7: in7}
"""


def test_ddp_trains_a_spec_with_a_dead_node(tmp_path, tiny_data):
    spec = tmp_path / "dead.yaml"
    spec.write_text(DEAD_NODE_SPEC)
    neck = compile_neck(load_spec_file(spec), [40, 112, 320], width=16)
    assert neck.dead_nodes == ["unused"]
    args = ["--neck", str(spec), "--data", tiny_data, "--epochs", "1", "--batch-size", "8"]
    ddp = torchrun(*args, "--results", str(tmp_path / "ddp"))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    (record,) = load_records(tmp_path / "ddp")
    assert record.ok and record.distributed is not None and record.distributed["world_size"] == 2
