"""Reporting: the study's tables and figures from the runs' results."""
