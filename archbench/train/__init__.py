"""Training and evaluation of detectors (see :mod:`.loop`)."""

from archbench.train.loop import TrainingDiverged, evaluate_detector, train_detector

__all__ = ["TrainingDiverged", "evaluate_detector", "train_detector"]
