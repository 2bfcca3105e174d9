"""Evaluation of policies under each task's protocol."""
