"""Training and evaluation, shared by every task.

- :mod:`.trainer`: the epoch loop, evaluation with EMA weights, checkpoints; :mod:`.schedule`: the LR
  schedule and the divergence error; :mod:`.distributed`: DDP context and samplers; :mod:`.allocator`: the
  malloc settings of a training process.
- :mod:`.det_trainer` / :mod:`.seg_trainer`: each task's loss, prediction and metrics.
- :mod:`.tasks`: what each task (``det``, ``seg``) uses: data opener, model, head, trainer, headline metrics.
- :mod:`.task_names`: the tasks by name and their headline metrics, without torch (for readers of records).
"""
