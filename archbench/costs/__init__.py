"""Costs of a model without training it: params, FLOPs and latency.

- :mod:`.flops`: the FLOP counter (torch dispatch; one multiply-add = one flop, fvcore's convention) and params.
- :mod:`.profile`: rows of params / GFLOPs by part (backbone, neck, head) per (neck, phi), and latency.
- :mod:`.render`: ``archbench profile``'s output formats.
- :mod:`.perf`: timing harness, peak memory, inference rewrites, roofline (``scripts/bench_necks.py``).
"""
