"""``archbench run``: train and evaluate every (neck, phi, seed) and record each run."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from archbench.cli.consoles import err, out
from archbench.cli.options import (
    act_option,
    check_device,
    fuse_option,
    neck_list,
    norm_option,
    op_option,
    parse_int_range,
    quiet_option,
    split_list,
    terms_option,
    verbose_option,
    verbosity,
)
from archbench.cli.progress import RichObserver
from archbench.errors import UserError
from archbench.runs.layout import runs_dir
from archbench.runs.observers import SweepObserver
from archbench.spec.terms import resolve_terms


def parse_workers(text: str) -> int:
    """``--workers``: a whole number >= 0 of DataLoader worker processes; UserError otherwise."""
    value = text.strip()
    if not (value.isascii() and value.isdigit()):
        raise UserError(
            f"--workers {text!r}: give how many DataLoader worker processes load each run's batches, a whole "
            "number 0 or more (0, the default: the training process loads them itself; any N gives the same "
            "batches, bit for bit, since every image is augmented from its (seed, epoch, index))"
        )
    return int(value)


def parse_amp(amp: bool, amp_dtype: str | None) -> str:
    """``TrainConfig.amp`` from ``--amp`` (bf16) and ``--amp-dtype`` (which wins); UserError on a bad dtype."""
    from archbench.train.trainer import AMP_MODES  # torch: imported by the commands that train, not at start-up

    if amp_dtype is None:
        return "bf16" if amp else "off"
    if amp_dtype not in AMP_MODES:
        raise UserError(
            f"--amp-dtype {amp_dtype!r}: choose one of {', '.join(AMP_MODES)} (bf16: bfloat16 autocast; fp16: "
            "float16 autocast with a gradient scaler; off: float32 throughout). --amp alone means bf16"
        )
    if amp and amp_dtype == "off":
        raise UserError("--amp asks for bf16 autocast but --amp-dtype off for none: give one of the two")
    return amp_dtype


def parse_init(text: str) -> str:
    """``--init``: per-part | one-stream -> ``RunRequest.init``; UserError otherwise."""
    from archbench.models.seeding import INIT_MODES  # torch, as above

    mode = text.strip().replace("-", "_")
    if mode not in INIT_MODES:
        raise UserError(
            f"--init {text!r}: choose per-part (each part of the model from its own stream seeded by the run seed and "
            "the part's name: paired necks) or one-stream (every part from one stream in build order)"
        )
    return mode


def run_cmd(
    neck: str = typer.Option("bifpn", "--neck", help="comma list of built-in names / spec files, or 'all'"),
    phi: str = typer.Option("0", "--phi", help="phi values: 0..3, 0,2 or 1"),
    task: str = typer.Option("det", "--task", help="det (detection) | seg (semantic segmentation)"),
    data: str = typer.Option("synthetic", "--data", help="synthetic | coco:PATH | segfolder:PATH (seg only)"),
    preset: str = typer.Option("proxy", "--preset", help="scaling rule: proxy (CPU-sized) | efficientdet"),
    seeds: str = typer.Option("0", "--seeds", help="comma list / range of seeds, e.g. 0,1,2"),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="training epochs (default: the task's)"),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="global batch (split across torchrun's processes)"
    ),
    lr: float | None = typer.Option(None, "--lr"),
    optimizer: str | None = typer.Option(None, "--optimizer", help="adamw | sgd"),
    ema: bool = typer.Option(False, "--ema", help="evaluate an exponential moving average of the weights"),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (same as --amp-dtype bf16)"),
    amp_dtype: str | None = typer.Option(
        None, "--amp-dtype", help="autocast dtype: bf16 | fp16 (with a gradient scaler) | off; CPU and CUDA"
    ),
    deterministic: bool = typer.Option(
        False, "--deterministic", help="deterministic kernels only (torch.use_deterministic_algorithms, cuDNN)"
    ),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="torch CPU threads per run (default: the cores; with --jobs N: cores // N; "
        "with --executor ray: 1, the CPUs each run asks for)",
    ),
    jobs: int = typer.Option(1, "--jobs", help="runs of the sweep trained side by side, one process each"),
    executor: str = typer.Option(
        "local", "--executor", help="local (this machine: one process, or --jobs N) | ray (tasks of a Ray cluster)"
    ),
    address: str | None = typer.Option(
        None, "--address", help="--executor ray: the cluster's HOST:PORT or ray://HOST:PORT (default: start one here)"
    ),
    gpus_per_run: float | None = typer.Option(
        None, "--gpus-per-run", min=0, help="GPUs per run with --jobs or --executor ray (default 1; 0.5: two per GPU)"
    ),
    oversubscribe: bool = typer.Option(
        False, "--oversubscribe", help="--jobs on CUDA: allow more runs at once than the GPUs hold at --gpus-per-run"
    ),
    workers: str = typer.Option(
        "0", "--workers", help="DataLoader worker processes per run (0: the run's own process loads; same batches)"
    ),
    subset: int | None = typer.Option(None, "--subset", min=1, help="train on N images (deterministic)"),
    categories: str | None = typer.Option(None, "--categories", help="comma list of category names or ids"),
    pretrained: bool = typer.Option(False, "--pretrained", help="timm's pretrained backbone weights (needs network)"),
    backbone_weights: Path | None = typer.Option(None, "--backbone-weights", help="local backbone state dict"),
    results: Path = typer.Option(Path("results"), "--results", help="folder for runs/ records and checkpoints"),
    force: bool = typer.Option(False, "--force", help="re-run configurations that already have an ok record"),
    resume: bool = typer.Option(False, "--resume", help="continue interrupted runs from their last epoch checkpoint"),
    keep_weights: bool = typer.Option(
        True, "--keep-weights/--no-keep-weights", help="keep each ok run's final weights in RESULTS/weights/"
    ),
    scaling: str | None = typer.Option(
        None, "--scaling", help="study:NAME[#TRIAL]: a search's coefficients instead of --preset"
    ),
    storage: str | None = typer.Option(
        None, "--storage", help="--scaling's study database (default: RESULTS/search.db)"
    ),
    terms: str | None = terms_option(),
    op: str | None = op_option(),
    fuse: str | None = fuse_option(),
    act: str | None = act_option(),
    norm: str | None = norm_option(),
    init: str = typer.Option(
        "per-part",
        "--init",
        help="initial weights: per-part (backbone, neck and head each from its own seeded stream, so the necks of "
        "one seed share backbone and head weights) | one-stream (one stream in build order, as before)",
    ),
    data_seed: int | None = typer.Option(
        None,
        "--data-seed",
        min=0,
        help="seed of the training data's order, apart from --seeds (which then seed only the initial weights); "
        "for measuring where seed-to-seed variance comes from",
    ),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> None:
    """Train and evaluate every (neck, phi, seed); each finished run writes one JSON record under RESULTS/runs/.

    Under `torchrun --nproc_per_node N -m archbench run ...` each run is trained by N processes with
    DistributedDataParallel (gloo on the CPU, nccl on CUDA); rank 0 writes the records. With --jobs N,
    N independent runs train at once, each in its own process (not under torchrun).
    """
    # the training stack (torch, timm) loads here, so that --help and the other commands start at once
    from archbench.runs.parallel import check_jobs, sweep_parallel
    from archbench.runs.ray_sweep import check_executor, sweep_ray
    from archbench.runs.sweep import RunRequest, sweep
    from archbench.search.report import study_rule
    from archbench.train.distributed import DistContext, launched_world_size
    from archbench.train.trainer import TrainConfig

    shown = verbosity(quiet, verbose)
    check_jobs(jobs, launched_world_size())
    ray_resources = check_executor(
        executor,
        jobs=jobs,
        device=device,
        address=address,
        threads=threads,
        gpus_per_run=gpus_per_run,
        world_size=launched_world_size(),
    )
    check_device(device)
    train_cfg = TrainConfig.for_task(task)
    changes: dict[str, Any] = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer}
    if optimizer is not None and optimizer not in ("adamw", "sgd"):
        raise UserError(f"--optimizer {optimizer!r}: choose adamw or sgd")
    amp_mode = parse_amp(amp, amp_dtype)
    train_cfg = replace(
        train_cfg,
        **{k: v for k, v in changes.items() if v is not None},
        ema=ema,
        amp=amp_mode,
        deterministic=deterministic,
    )
    train_cfg = replace(train_cfg, workers=parse_workers(workers))
    equal_terms = resolve_terms(terms, op=op, fuse=fuse, act=act, norm=norm)
    init_mode = parse_init(init)
    rule = None
    if scaling is not None:
        rule = study_rule(scaling, storage, results)
        preset = rule.name
    requests = [
        RunRequest(
            neck=n,
            phi=p,
            seed=s,
            task=task,
            preset=preset,
            data=data,
            subset=subset,
            categories=tuple(split_list(categories)) if categories else None,
            train=train_cfg,
            pretrained=pretrained,
            backbone_weights=str(backbone_weights) if backbone_weights else None,
            device=device,
            threads=threads,
            rule=rule,
            keep_weights=keep_weights,
            terms=equal_terms,
            init=init_mode,
            data_seed=data_seed,
        )
        for p in parse_int_range(phi, "--phi")
        for n in neck_list(neck)
        for s in parse_int_range(seeds, "--seeds")
    ]
    dist = DistContext.from_env(device)
    try:
        with RichObserver(err, shown) if dist.is_main else nullcontext(SweepObserver()) as observer:
            if ray_resources is not None:
                records = sweep_ray(
                    requests,
                    results,
                    address=address,
                    resources=ray_resources,
                    force=force,
                    resume=resume,
                    observer=observer,
                )
            elif jobs > 1:
                records = sweep_parallel(
                    requests,
                    results,
                    jobs=jobs,
                    threads=threads,
                    force=force,
                    resume=resume,
                    observer=observer,
                    gpus_per_run=gpus_per_run if gpus_per_run is not None else 1.0,
                    oversubscribe=oversubscribe,
                )
            else:
                records = sweep(requests, results, force=force, resume=resume, observer=observer, dist=dist)
    finally:
        dist.close()
    failed = [r for r in records if not r.ok]
    if not dist.is_main:
        raise typer.Exit(1 if failed else 0)
    out.print(f"{len(records)} run(s) recorded under {runs_dir(results)}; {len(failed)} failed")
    if failed:
        raise typer.Exit(1)
