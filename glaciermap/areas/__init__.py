"""Analysis of the predicted maps: glacier areas per zone and per glacier, their spread and change.

- :mod:`.areas` tabulates glacier area per date and zone where the date was seen, and its change;
- :mod:`.area_spread` adds the seed ensembles' spread and uncertain areas;
- :mod:`.area_tables` writes the workflow's area tables (rule ``maps_areas``);
- :mod:`.change_figure` draws two dates' outlines over the RGB image (rule ``maps_change_figure``);
- :mod:`.glaciers`, :mod:`.glacier_outlines`, :mod:`.glacier_tables`, :mod:`.glacier_figure`: the
  per-glacier partition, outlines, tables and change chart (rules in ``rules/glaciers.smk``).
"""
