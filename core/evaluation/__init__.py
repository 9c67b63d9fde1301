"""Evaluation: question sets, metrics, the runner, reports, the recommendation (core.lab runs it in the background)."""
