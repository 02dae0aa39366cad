"""Whole models: timm backbones, compiled necks and task heads, and the rules that scale them (:mod:`.scaling`)."""
