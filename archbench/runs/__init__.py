"""Runs: the sweep that trains and evaluates each configuration, and what it leaves behind.

- :mod:`archbench.runs.sweep`: ``archbench run``'s engine (prepare, train, cost, record; skip-if-done, resume).
- :mod:`archbench.runs.records`: the run record (:class:`~archbench.runs.records.RunRecord`), its JSON
  file, loading and the config hash.
- :mod:`archbench.runs.layout`: the one place that names paths in a results folder and the data cache.

Nothing is imported here; importing :mod:`.records` alone does not import torch.
"""
