"""The tasks by name and the metrics each reports first: plain facts that import no torch.

:mod:`archbench.train.tasks` builds each task's data opener, model and trainer on these facts; readers of
records (the board, :mod:`archbench.results`) use them without paying for torch.
"""

from __future__ import annotations

from archbench.errors import UserError

#: What each task is: ``det`` (boxes, COCO's AP) and ``seg`` (class-index maps, mIoU).
DESCRIPTIONS: dict[str, str] = {"det": "detection", "seg": "semantic segmentation"}
#: Each task's headline metrics, as progress lines show them; the first is the one a board ranks on and a
#: search maximises.
HEADLINES: dict[str, tuple[str, ...]] = {"det": ("AP", "AP50"), "seg": ("mIoU", "pixel_accuracy")}


def check_task(name: str) -> str:
    """``name`` when it names a task; a ``UserError`` listing the tasks otherwise."""
    if name not in DESCRIPTIONS:
        described = ", ".join(f"{task}: {what}" for task, what in DESCRIPTIONS.items())
        raise UserError(f"--task {name!r}: choose one of {', '.join(DESCRIPTIONS)} ({described})")
    return name


def main_metric(task: str) -> str:
    """The metric ``task`` is ranked on and a search maximises (AP for det, mIoU for seg); ``UserError`` for an
    unknown task."""
    return HEADLINES[check_task(task)][0]
