"""Evaluation: question sets, metrics, the background runner, reports and the recommendation."""
