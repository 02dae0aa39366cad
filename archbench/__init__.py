"""archbench: compare multi-scale feature-fusion necks (FPN, PANet, NAS-FPN, BiFPN, DLA IDA/HDA) on equal terms."""

#: the one home of the version: pyproject.toml reads it from here (``[tool.setuptools.dynamic]``), so a wheel's
#: metadata, ``archbench --version`` and every record's ``environment.archbench`` agree
__version__ = "0.1.0"
