"""Reading inputs: scenes (multi-band, per-band, Sentinel-2 L2A) and glacier outlines."""
