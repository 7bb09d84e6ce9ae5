"""Offline jobs: training data, the training loop and evaluation (not used by the app)."""
