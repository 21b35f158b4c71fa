"""Download the workflow's inputs: Sentinel-2 L2A scenes from a STAC API and GLIMS outlines."""
