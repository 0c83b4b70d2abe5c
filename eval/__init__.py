"""Offline evaluation: run a gold set through the Pipeline, score it, report, compare runs."""
