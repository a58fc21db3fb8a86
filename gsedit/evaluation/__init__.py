"""Evaluation of finished sessions: the metrics of every turn (metrics.json), from its files."""
