"""Markers of synthetic data: a run, report or chart made from a generated world says so.

The demo world's STAC items carry ``SYNTHETIC_PROPERTY``; every output made from such items
is marked synthetic and every page and chart shown to a person carries ``SYNTHETIC_BANNER``.
"""

from __future__ import annotations

__all__ = ["SYNTHETIC_BANNER", "SYNTHETIC_PROPERTY"]

#: The line every report, chart and printed table made from a synthetic world carries.
SYNTHETIC_BANNER = "SYNTHETIC DEMO DATA - not a real estimate"
#: STAC item property set on the demo world's scenes.
SYNTHETIC_PROPERTY = "demo:synthetic"
