"""The values of every glacier mask: reference masks, tile masks and predicted masks.

One uint8 convention everywhere: 1 = glacier, 0 = not glacier, 255 = no label
(nodata in the scene, or a label marked uncertain). Pixels with no label never
enter a loss, a metric, a threshold fit or a band statistic. Torch-free.
"""

from __future__ import annotations

NOT_GLACIER = 0
GLACIER = 1
NODATA = 255  # no label: the GeoTIFF nodata value of every mask
