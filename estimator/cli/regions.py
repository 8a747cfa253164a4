"""Command line: ``python -m estimator regions {list,show}``.

``regions list`` prints the named regions of ``configs/regions.yaml``; ``regions show NAME``
resolves a named region, department, province, district or ubigeo against the INEI 2007
boundaries and prints its area, bounding box, UTM zones and Sentinel-2 tiles.

Interface: :func:`add_regions_parser`, called by :func:`estimator.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_regions_parser"]

EPILOG_REGIONS = """examples:
  python -m estimator regions list
  python -m estimator regions show vraem
  python -m estimator regions show "La Convención" --json
  python -m estimator regions show 080910 --boundaries ~/data/peru-geojson
"""
EPILOG_LIST = """examples:
  python -m estimator regions list

Zones (VRAE, VRAEM, Alto Huallaga) are approximations of UNODC/DEVIDA limits built from
2007 districts; departments and provinces are INEI 2007 units (generalized boundaries).
"""
EPILOG_SHOW = """examples:
  python -m estimator regions show loreto
  python -m estimator regions show vraem --json
  python -m estimator regions show Ucayali                # ambiguous: lists department and province
  python -m estimator regions show department:Ucayali
  python -m estimator regions show 1604 --boundaries ~/data/peru-geojson

NAME is a named region (see `regions list`), a department, province or district name
(case and accents ignored; prefix department:, province: or district: when a name is
shared) or a ubigeo code of 2, 4 or 6 digits. Boundary files are downloaded once into a
checksummed cache; offline, point --boundaries (or ESTIMATOR_BOUNDARIES) at a directory
holding the three INEI 2007 GeoJSON files.
"""


def add_regions_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``regions list`` and ``regions show`` to the estimator's subcommands."""
    # Imported here: estimator.cli imports this module to build its parser.
    from estimator.console import add_command

    r = add_command(
        sub,
        "regions",
        None,
        help="list named regions and show their facts",
        epilog=EPILOG_REGIONS,
        description="Named regions of Peru (departments, provinces, coca monitoring zones) from INEI 2007 boundaries.",
    )
    rsub = r.add_subparsers(dest="regions_command", required=True, metavar="COMMAND")

    add_command(
        rsub,
        "list",
        _cmd_list,
        help="list the named regions of configs/regions.yaml",
        epilog=EPILOG_LIST,
        description="List the named regions: key, kind, number of INEI 2007 units, name.",
    )

    sh = add_command(
        rsub,
        "show",
        _cmd_show,
        help="area, bounding box, UTM zones and Sentinel-2 tiles of a region",
        epilog=EPILOG_SHOW,
        description="Resolve a region against the INEI 2007 boundaries and print its facts.",
    )
    sh.add_argument("name", help="named region, department/province/district name, or ubigeo")
    sh.add_argument(
        "--boundaries",
        type=Path,
        metavar="DIR",
        help="directory holding the boundary GeoJSONs (default: download and cache)",
    )
    sh.add_argument("--json", action="store_true", help="print the facts as JSON")


def _cmd_list(args: argparse.Namespace) -> int:
    from estimator.regions.named import list_regions

    regions = list_regions()
    print(f"{'key':<26}{'kind':<12}{'units':>6}  name")
    for r in regions:
        print(f"{r.key:<26}{r.kind:<12}{len(r.units):>6}  {r.name}")
    if any(r.approximate for r in regions):
        print("zones are approximations of UNODC/DEVIDA limits built from 2007 districts")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from estimator.regions.named import region_facts, resolve_region

    facts = region_facts(resolve_region(args.name, args.boundaries))
    if args.json:
        print(json.dumps(facts, indent=2, ensure_ascii=False))
        return 0
    w, s, e, n = facts["bbox"]
    print(f"{facts['name']} [{facts['id']}, {facts['kind']}]")
    print(f"area:       {facts['area_ha']:,.0f} ha (geodesic, WGS84; INEI 2007 generalized boundaries)")
    print(f"bbox:       {w:.4f}, {s:.4f}, {e:.4f}, {n:.4f} (lon/lat W, S, E, N)")
    print(f"UTM zones:  {', '.join(f'EPSG:{c}' for c in facts['utm_epsg'])}")
    print(f"S2 tiles:   {len(facts['s2_tiles'])}: {' '.join(facts['s2_tiles'])}")
    if facts["note"]:
        print(f"note:       {facts['note']}")
    if facts["approximate"]:
        print(f"APPROXIMATE: {facts['approximation']}")
    return 0
