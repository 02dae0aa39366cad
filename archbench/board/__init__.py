"""The board: leaderboards, comparisons and figures derived from run records alone.

``aggregate`` (records -> one row per (task, dataset, preset, neck, phi): seed statistics, ranks,
Pareto flags; failed runs apart), ``provenance`` (how the runs were made), ``iso`` (necks compared
at equal GFLOPs), ``cells`` (the tables as formatted text cells), ``formats`` (terminal table,
Markdown, CSV, JSON, HTML) and ``plots`` (PNG figures).
"""
