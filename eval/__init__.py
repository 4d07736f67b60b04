"""Evaluation data for clipcite: generated test media with exact ground truth, and query sets."""
