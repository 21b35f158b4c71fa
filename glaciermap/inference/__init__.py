"""Whole-scene prediction, glacier outlines, areas and their change.

- :mod:`.scene` reads the four bands a checkpoint needs, window by window;
- :mod:`.sliding_window` blends overlapping tile predictions block by block;
- :mod:`.geotiff` writes rasters by windows and publishes them as Cloud-Optimized GeoTIFFs;
- :mod:`.maps` turns a scene into the probability and mask GeoTIFFs;
- :mod:`.vectorize` turns a mask into outline polygons with their area;
- :mod:`.areas` tabulates glacier area per date and its change;
- :mod:`.change_figure` draws two dates' outlines over the RGB image;
- :mod:`.commands` holds the ``glaciermap predict`` command and the functions
  the workflow's scripts call.
"""
