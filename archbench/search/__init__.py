"""Optuna search over compound-scaling coefficients: spaces, storage, studies shared by workers, trials, reports."""
