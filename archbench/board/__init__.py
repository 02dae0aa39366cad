"""The board: leaderboards, comparisons and figures derived from run records alone.

``aggregate`` (records -> per-seed rows and one row per group, neck and phi: seed statistics, ranks,
Pareto flags; failed runs apart), ``stats`` (intervals, paired differences, tie letters, rank stability,
seeds needed), ``verdicts`` (those per comparison group), ``iso`` (necks compared at equal GFLOPs, with
intervals), ``published`` and ``transfer`` (the board's ranking against the papers'), ``provenance`` (how
the runs were made), ``compose`` (everything one board shows), ``cells`` (the board as headings, sentences
and tables of text), ``formats`` (terminal table, Markdown, CSV, JSON, HTML) and ``plots`` (PNG figures).

The package itself imports nothing, so ``archbench leaderboard --help`` can name the default reference neck
without loading pandas.
"""

#: The default reference neck of paired differences (``--reference`` changes it).
REFERENCE = "fpn"
