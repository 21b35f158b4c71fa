"""Evaluation: pixel metrics of predicted masks and the threshold baseline."""
