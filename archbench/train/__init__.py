"""Training and evaluation of detectors: :mod:`.trainer` (epoch loop, checkpoints) and :mod:`.loop` (shared pieces)."""
