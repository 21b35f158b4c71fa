"""Segmentation models: the nine study architectures behind one registry."""
