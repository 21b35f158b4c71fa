"""Analysis of the predicted maps: glacier areas, their spread and change.

- :mod:`.areas` tabulates glacier area per date and zone where the date was seen, and its change;
- :mod:`.area_spread` adds the seed ensembles' spread and uncertain areas;
- :mod:`.area_tables` writes the workflow's area tables (rule ``maps_areas``);
- :mod:`.change_figure` draws two dates' outlines over the RGB image (rule ``maps_change_figure``).
"""
