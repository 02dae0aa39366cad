"""The default of ``archbench predict`` that its ``--help`` states, kept apart from :mod:`archbench.runs.predict`
(torch, torchvision) so that stating it loads neither."""

#: Default score a drawn and listed detection needs (``--score-threshold``).
SCORE_THRESHOLD = 0.3
