"""Sentinel-2 L2A facts shared by every stage: band names, native resolutions, SCL codes.

Asset keys follow Element84 Earth Search v1 (``blue``, ``nir08``, ``scl`` ...); other
providers are mapped onto these names by the search stage.
"""

from __future__ import annotations

import datetime as _dt
from enum import IntEnum

__all__ = [
    "BASELINE_OFFSET_FROM",
    "BASELINE_OFFSET_VERSION",
    "BOA_OFFSET_DN",
    "NATIVE_RESOLUTION",
    "REFLECTANCE_BANDS",
    "S2_BAND_ID",
    "SCL",
    "SCL_CLEAR_DEFAULT",
    "SCL_CLOUD",
]

#: Reflectance bands loaded by the pipeline, in the order features expect them.
REFLECTANCE_BANDS: tuple[str, ...] = (
    "blue", "green", "red", "nir",
    "rededge1", "rededge2", "rededge3", "nir08", "swir16", "swir22",
)

#: Earth Search v1 asset key -> Sentinel-2 band id (also the COG file stem).
S2_BAND_ID: dict[str, str] = {
    "blue": "B02", "green": "B03", "red": "B04", "nir": "B08",
    "rededge1": "B05", "rededge2": "B06", "rededge3": "B07", "nir08": "B8A",
    "swir16": "B11", "swir22": "B12", "scl": "SCL",
}

#: Native ground sampling distance in metres.
NATIVE_RESOLUTION: dict[str, int] = {
    "blue": 10, "green": 10, "red": 10, "nir": 10,
    "rededge1": 20, "rededge2": 20, "rededge3": 20, "nir08": 20,
    "swir16": 20, "swir22": 20, "scl": 20,
}

#: Processing baseline 04.00 (in operation from 2022-01-25) adds 1000 to every L2A DN.
BOA_OFFSET_DN = 1000
BASELINE_OFFSET_FROM = _dt.date(2022, 1, 25)
BASELINE_OFFSET_VERSION = "04.00"


class SCL(IntEnum):
    """Sen2Cor scene classification codes."""

    NO_DATA = 0
    SATURATED_DEFECTIVE = 1
    DARK_AREA = 2
    CLOUD_SHADOW = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM = 8
    CLOUD_HIGH = 9
    THIN_CIRRUS = 10
    SNOW = 11


#: Codes counted as a clear observation unless a job says otherwise.
SCL_CLEAR_DEFAULT: tuple[int, ...] = (SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER, SCL.UNCLASSIFIED)
#: Codes that Earth Search sums into ``eo:cloud_cover``.
SCL_CLOUD: tuple[int, ...] = (SCL.CLOUD_MEDIUM, SCL.CLOUD_HIGH, SCL.THIN_CIRRUS)
