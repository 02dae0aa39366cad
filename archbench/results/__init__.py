"""Results from Python: a results folder's run records and leaderboard as pandas DataFrames.

>>> from archbench.results import runs, board, query
>>> runs("results/board")                              # one row per run record (per seed), flat columns
>>> query(neck="bifpn", phi=0, results="results/board")  # the rows of runs() that match; lists accepted
>>> board("results/board")                             # the leaderboard, as `archbench leaderboard` computes it

- :func:`~archbench.results.api.runs`: one row per record; columns ``task``, ``neck``, ``phi``, ``seed``,
  ``status``, ``score``, ... then ``metrics.AP50``, ``costs.gflops``, ``train.lr``, ...
  (:mod:`archbench.results.flat` describes the scheme).
- :func:`~archbench.results.api.board`: :func:`archbench.board.aggregate.build_table` over the records.
- :func:`~archbench.results.api.query`: :func:`runs` filtered by neck, phi, task, preset and equal terms.

Reading records imports no torch: this package stands after ``board`` and before ``cli``.
"""

from archbench.results.api import board, query, runs

__all__ = ["board", "query", "runs"]
