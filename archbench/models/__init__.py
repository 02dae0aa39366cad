"""Whole models: timm backbones, compiled necks and task heads."""
