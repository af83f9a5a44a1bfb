"""Scoring a test set: the engine, TTA, time budget, fallback, ensembles and runtime planning."""
