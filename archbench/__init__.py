"""archbench: compare multi-scale feature-fusion necks (FPN, PANet, NAS-FPN, BiFPN, DLA IDA/HDA) on equal terms."""

__version__ = "0.1.0"
