"""Datasets: the built-in generated COCO-format set and loaders for COCO-format data."""
