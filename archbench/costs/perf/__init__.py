"""Speed: a side-by-side timing harness, peak memory of a step, inference rewrites, hardware ceilings."""
