"""Whole models: timm backbones, compiled necks and task heads, and the scaling rules that size them (:mod:`.scaling`)."""
