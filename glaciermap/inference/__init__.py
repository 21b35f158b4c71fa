"""Whole-scene prediction: the engine that turns a scene and checkpoints into maps.

- :mod:`.settings` holds the ``inference:`` settings (windows, blending, TTA), torch-free;
- :mod:`.scene` reads the channels a checkpoint needs, window by window;
- :mod:`.windows` plans the windows and blocks; :mod:`.tta` the flipped copies;
- :mod:`.sliding_window` blends overlapping window predictions block by block;
- :mod:`.geotiff` writes rasters by windows and publishes them as Cloud-Optimized GeoTIFFs;
- :mod:`.maps` turns a scene into the probability and mask GeoTIFFs (the map rules' entry);
- :mod:`.vectorize` turns a mask into outline polygons with their area;
- :mod:`.commands` holds the ``glaciermap predict`` command.

The analysis of the maps (areas, their spread and change, the change figure)
is :mod:`glaciermap.areas`; the checkpoint ensemble is :mod:`glaciermap.models.ensemble`.
"""
