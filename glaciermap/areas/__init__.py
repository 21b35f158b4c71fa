"""Glacier areas: per zone, per glacier and their change between dates."""
