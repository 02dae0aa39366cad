"""The shipped search spaces (YAML): scaling spaces (coefficients of a scaling rule) and topology spaces (neck
graphs). This folder is the checkout's top-level ``search_spaces/``; pyproject.toml maps it into the package as
``archbench.search_spaces``, so a wheel and an editable install read the same files through
``importlib.resources``."""
