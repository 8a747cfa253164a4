"""STAC providers: where Sentinel-2 L2A lives and how each catalog spells it.

Catalogs disagree on asset keys (``red`` at Earth Search v1, ``B04`` at Planetary Computer
and Earth Search v0, ``B04_10m`` at Copernicus Data Space), on where the CRS is
(``proj:epsg`` or ``proj:code``, on the item or on each asset) and on where the processing
baseline and MGRS tile are written. The rest of the package reads Earth Search v1 items;
this module turns any provider's item into one, once, at the search boundary.

Interface
---------
``load_providers(path)``
    Provider definitions from ``configs/providers.yaml`` (data, not code).
``get_provider(name)``
    One provider by name; :class:`UnknownProviderError` lists the known ones.
``normalize_item(item, provider)``
    A new Item dict in Earth Search v1 shape, or :class:`ItemMetadataError`.
``url_patcher(provider)``
    The ``patch_url`` callable for ``odc.stac.load`` (Planetary Computer signing), or None.
"""

from __future__ import annotations

import copy
import functools
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from estimator.bands import REFLECTANCE_BANDS, S2_BAND_ID
from estimator.errors import ConfigError, ItemMetadataError, UnknownProviderError

__all__ = [
    "DEFAULT_PROVIDERS_PATH",
    "REQUIRED_BANDS",
    "ItemMetadataError",
    "Provider",
    "UnknownProviderError",
    "get_provider",
    "load_providers",
    "normalize_item",
    "url_patcher",
]

#: Provider definitions shipped with the project.
DEFAULT_PROVIDERS_PATH = Path(__file__).resolve().parents[2] / "configs" / "providers.yaml"
#: Bands every item must have, named as in :data:`estimator.bands.S2_BAND_ID`.
REQUIRED_BANDS: tuple[str, ...] = (*REFLECTANCE_BANDS, "scl")

_FIELDS = frozenset({"url", "collections", "asset_map", "sign", "description"})
_REQUIRED_FIELDS = frozenset({"url", "collections", "asset_map"})
# The processing baseline as ESA writes it into product names: ..._N0212_... is 02.12.
_PRODUCT_BASELINE = re.compile(r"_N(\d{2})(\d{2})_")
_BASELINE = re.compile(r"^(\d{1,2})\.(\d{2})$")
_GRID_CODE_MGRS = re.compile(r"^MGRS-T?(\d{1,2})([C-X])([A-Z]{2})$")
# Earth Search's eo:cloud_cover is the sum of these Sen2Cor shares (SCL 8, 9 and 10);
# checked on the recorded Earth Search v1 and Planetary Computer items.
_CLOUD_PARTS = (
    "s2:medium_proba_clouds_percentage",
    "s2:high_proba_clouds_percentage",
    "s2:thin_cirrus_percentage",
)
# Earth Search v0 subtracted the 04.00 offset from the pixels of scenes flagged so
# (github.com/cirrus-geo/cirrus-earth-search/issues/21); their DN are old-baseline DN.
_HARMONISED_FLAG = "sentinel:boa_offset_applied"
_L2A_SCALE = 1e-4
# L2A reflectance is uint16 and SCL uint8, both with 0 for no data (as Earth Search v1
# declares them). Without this, odc-stac loads items that omit it as float32 with no nodata.
_PIXEL_TYPE = {band: {"nodata": 0, "data_type": "uint16"} for band in REFLECTANCE_BANDS} | {
    "scl": {"nodata": 0, "data_type": "uint8"}
}


@dataclass(frozen=True)
class Provider:
    """A STAC API serving Sentinel-2 L2A, and how its items name things."""

    name: str
    """Key in ``providers.yaml``, e.g. ``"planetary-computer"``."""
    url: str | None
    """Root of the STAC API; None when only known at run time (``local``)."""
    collections: tuple[str, ...]
    """Sentinel-2 L2A collection ids at this API, preferred first."""
    asset_map: Mapping[str, str] = field(default_factory=dict)
    """Provider asset key -> our band name (a key of :data:`estimator.bands.S2_BAND_ID`)."""
    sign: bool = False
    """Asset URLs need a Planetary Computer SAS token before they can be read."""
    description: str = ""
    """One line for humans."""

    def __post_init__(self) -> None:
        # A private copy: the definitions must not change under a running job.
        object.__setattr__(self, "asset_map", dict(self.asset_map))
        object.__setattr__(self, "collections", tuple(self.collections))

    def key_for(self, band: str) -> str:
        """The provider's asset key for one of our band names."""
        for key, ours in self.asset_map.items():
            if ours == band:
                return key
        raise KeyError(band)


def load_providers(path: Path | None = None) -> dict[str, Provider]:
    """Read and validate provider definitions.

    Parameters
    ----------
    path
        A providers YAML file; default :data:`DEFAULT_PROVIDERS_PATH`.

    Returns
    -------
    dict
        Provider name -> :class:`Provider`, in file order.

    Raises
    ------
    ConfigError
        The file is missing, is not YAML, or a definition is invalid.
    """
    path = DEFAULT_PROVIDERS_PATH if path is None else Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"provider definitions not found at {path}; pass the path of a providers.yaml "
            "(the project ships one in configs/)"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path} must map provider names to definitions")
    return {str(name): _parse_provider(str(name), spec, path) for name, spec in raw.items()}


def _parse_provider(name: str, spec: Any, path: Path) -> Provider:
    where = f"provider '{name}' in {path}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping with fields {sorted(_FIELDS)}")
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
    missing = sorted(_REQUIRED_FIELDS - set(spec))
    if missing:
        raise ConfigError(f"{where} lacks field(s) {missing}")
    url, collections, asset_map = spec["url"], spec["collections"], spec["asset_map"]
    sign, description = spec.get("sign", False), spec.get("description", "")
    if url is not None and not isinstance(url, str):
        raise ConfigError(f"{where}: url must be a URL string or null")
    if not (isinstance(collections, list) and collections and all(isinstance(c, str) for c in collections)):
        raise ConfigError(f"{where}: collections must be a non-empty list of collection ids")
    if not isinstance(sign, bool):
        raise ConfigError(f"{where}: sign must be true or false")
    if not isinstance(asset_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in asset_map.items()
    ):
        raise ConfigError(f"{where}: asset_map must map provider asset keys to band names")
    bad = sorted(set(asset_map.values()) - set(S2_BAND_ID))
    if bad:
        raise ConfigError(f"{where}: asset_map targets {bad} are not band names; use {sorted(S2_BAND_ID)}")
    twice = sorted({v for v in asset_map.values() if list(asset_map.values()).count(v) > 1})
    if twice:
        raise ConfigError(f"{where}: asset_map maps several keys to {twice}; map each band once")
    unmapped = [b for b in REQUIRED_BANDS if b not in asset_map.values()]
    if unmapped:
        raise ConfigError(f"{where}: asset_map has no key for band(s) {unmapped}")
    return Provider(name, url, tuple(collections), asset_map, sign, str(description))


@functools.cache
def _default_providers() -> dict[str, Provider]:
    return load_providers()


def get_provider(name: str, *, path: Path | None = None) -> Provider:
    """The provider called ``name`` in ``path`` (default: the shipped definitions).

    Raises
    ------
    UnknownProviderError
        No provider of that name; the message lists the known names.
    """
    providers = _default_providers() if path is None else load_providers(path)
    try:
        return providers[name]
    except KeyError:
        raise UnknownProviderError(f"unknown STAC provider '{name}'; choose one of {', '.join(providers)}") from None


def normalize_item(item: Mapping[str, Any], provider: Provider) -> dict[str, Any]:
    """A copy of ``item`` in Earth Search v1 shape, as the plan and the loader expect.

    - Assets named in ``provider.asset_map`` are renamed to our band names; other assets
      are kept as they are.
    - ``proj:epsg`` is filled from ``proj:code`` (``"EPSG:32718"``) on the band assets and on
      the item, and on the item from its band assets when it has none of its own.
    - When missing, ``s2:processing_baseline`` comes from ``sentinel:processing_baseline``,
      ``processing:version`` or the ``N0212`` in the product name; ``s2:mgrs_tile`` from the
      ``mgrs:*`` or ``sentinel:*`` tile parts or ``grid:code``; ``eo:cloud_cover`` from the
      Sen2Cor cloud shares.
    - Band scale/offset given as ``raster:scale``/``raster:offset`` (raster extension 2.0)
      are copied into ``raster:bands``, which the plan reads; Earth Search v0 scenes whose
      pixels were already harmonised get an explicit offset of 0. Bands without a declared
      pixel type get Earth Search's (uint16 reflectance, uint8 SCL, nodata 0).

    Parameters
    ----------
    item
        A STAC Item as a dict (``pystac.Item.to_dict()`` or parsed JSON); not modified.
    provider
        The catalog it came from.

    Raises
    ------
    ItemMetadataError
        A required band is missing, or no CRS is given for the item or its bands.
    """
    out: dict[str, Any] = copy.deepcopy(dict(item))
    item_id = out.get("id", "<no id>")
    source = out.get("assets") or {}
    # Unmapped assets first, so a mapped asset wins if a provider also has a key we use.
    assets = {k: v for k, v in source.items() if k not in provider.asset_map}
    assets.update({ours: source[key] for key, ours in provider.asset_map.items() if key in source})
    missing = [b for b in REQUIRED_BANDS if b not in assets]
    if missing:
        keys = ", ".join(provider.key_for(b) for b in missing)
        raise ItemMetadataError(
            f"item {item_id} has no asset for band(s) {', '.join(missing)} (expected key(s) {keys} "
            f"from provider '{provider.name}'); is it a Sentinel-2 L2A item of this provider?"
        )
    out["assets"] = assets
    props = out.setdefault("properties", {})

    band_epsg = []
    for band in REQUIRED_BANDS:
        epsg = _epsg(assets[band], item_id)
        if epsg is not None:
            _set_epsg(assets[band], epsg)
            band_epsg.append(epsg)
        _copy_raster_v2_scaling(assets[band])
        rb = list(assets[band].get("raster:bands") or [{}])
        rb[0] = {**_PIXEL_TYPE[band], **rb[0]}
        assets[band]["raster:bands"] = rb
    epsg = _epsg(props, item_id)
    if epsg is None and band_epsg:
        epsg = band_epsg[0]
    if epsg is None:
        raise ItemMetadataError(
            f"item {item_id} has no CRS: neither its properties nor its band assets carry proj:epsg "
            f"or proj:code; check that provider '{provider.name}' returns the projection extension"
        )
    _set_epsg(props, epsg)

    _fill_baseline(props, str(item_id))
    _fill_tile(props)
    _fill_cloud_cover(props)
    if props.get(_HARMONISED_FLAG) is True:
        for band in REFLECTANCE_BANDS:
            _set_scaling_if_absent(assets[band], _L2A_SCALE, 0.0)
    return out


def _epsg(fields: Mapping[str, Any], item_id: object) -> int | None:
    """EPSG code from ``proj:epsg`` or an ``EPSG:`` ``proj:code``; None when neither is set."""
    if fields.get("proj:epsg") is not None:
        return int(fields["proj:epsg"])
    code = fields.get("proj:code")
    if code is None:
        return None
    authority, _, number = str(code).partition(":")
    if authority.upper() != "EPSG" or not number.isdigit():
        raise ItemMetadataError(
            f"item {item_id} has proj:code {code!r}, which is not an EPSG code; "
            "Sentinel-2 L2A items are in UTM (EPSG:326xx/327xx): check the catalog"
        )
    return int(number)


def _set_epsg(fields: dict[str, Any], epsg: int) -> None:
    fields["proj:epsg"] = epsg
    # pystac warns when proj:code and proj:epsg disagree, "epsg:32718" included
    if fields.get("proj:code") is not None:
        fields["proj:code"] = f"EPSG:{epsg}"


def _fill_baseline(props: dict[str, Any], item_id: str) -> None:
    if props.get("s2:processing_baseline"):
        return
    for value in (props.get("sentinel:processing_baseline"), props.get("processing:version")):
        m = _BASELINE.match(str(value)) if value is not None else None
        if m:
            props["s2:processing_baseline"] = f"{int(m[1]):02d}.{m[2]}"
            return
    for name in (props.get("sentinel:product_id"), props.get("s2:product_uri"), item_id):
        m = _PRODUCT_BASELINE.search(str(name)) if name else None
        if m:
            props["s2:processing_baseline"] = f"{m[1]}.{m[2]}"
            return


def _fill_tile(props: dict[str, Any]) -> None:
    if props.get("s2:mgrs_tile"):
        return
    for prefix in ("mgrs:", "sentinel:"):
        zone, band, square = (props.get(f"{prefix}{p}") for p in ("utm_zone", "latitude_band", "grid_square"))
        if zone is not None and band is not None and square is not None:
            props["s2:mgrs_tile"] = f"{int(zone):02d}{band}{square}"
            return
    m = _GRID_CODE_MGRS.match(str(props.get("grid:code", "")))
    if m:
        props["s2:mgrs_tile"] = f"{int(m[1]):02d}{m[2]}{m[3]}"


def _fill_cloud_cover(props: dict[str, Any]) -> None:
    if props.get("eo:cloud_cover") is not None:
        return
    parts = [float(props[k]) for k in _CLOUD_PARTS if props.get(k) is not None]
    if len(parts) == len(_CLOUD_PARTS):
        props["eo:cloud_cover"] = sum(parts)


def _copy_raster_v2_scaling(asset: dict[str, Any]) -> None:
    """Raster extension 2.0 (STAC 1.1) moved scale/offset out of ``raster:bands``."""
    bands = asset.get("bands") or [{}]
    for fields in (asset, bands[0] if isinstance(bands[0], dict) else {}):
        if "raster:scale" in fields or "raster:offset" in fields:
            _set_scaling_if_absent(
                asset, float(fields.get("raster:scale", 1.0)), float(fields.get("raster:offset", 0.0))
            )
            return


def _set_scaling_if_absent(asset: dict[str, Any], scale: float, offset: float) -> None:
    rb = list(asset.get("raster:bands") or [{}])
    if "scale" in rb[0] or "offset" in rb[0]:
        return
    rb[0] = {**rb[0], "scale": scale, "offset": offset}
    asset["raster:bands"] = rb


def url_patcher(provider: Provider) -> Callable[[str], str] | None:
    """The ``patch_url`` to pass to ``odc.stac.load`` for ``provider``'s items, or None.

    For a provider with ``sign: true`` (Planetary Computer) this signs each asset URL with a
    SAS token via ``planetary_computer.sign``, looked up at call time.

    When it runs: odc-stac 0.5.3 applies ``patch_url`` inside ``odc.stac.load`` itself
    (``odc/stac/_stac_load.py``: ``patch_urls`` over the parsed items, before the dask graph
    is built), NOT in the read tasks. The signed URLs are then fixed in the graph, so a
    token must outlive the reads of everything loaded by one ``odc.stac.load`` call.
    ``estimator.stages.load.load_tile`` calls it once per output tile and the pipeline persists
    that tile at once, which keeps the window to one tile's reads; a graph kept for later
    would read with expired tokens. Note that ``planetary_computer`` reuses a cached token
    until less than 60 s of it remain, and leaves an already signed URL as it is.

    Raises
    ------
    ConfigError
        The provider signs URLs but the ``planetary-computer`` package is not installed.
    """
    if not provider.sign:
        return None
    try:
        with warnings.catch_warnings():
            # planetary-computer 1.0 declares pydantic models the v1 way: a DeprecationWarning
            # at import that only its maintainers can fix.
            warnings.simplefilter("ignore", DeprecationWarning)
            import planetary_computer  # noqa: F401  (only needed by providers that sign)
    except ImportError:
        raise ConfigError(
            f"provider '{provider.name}' needs its asset URLs signed by the planetary-computer "
            "package; install it with `pip install planetary-computer`"
        ) from None
    return _sign_planetary_computer


def _sign_planetary_computer(url: str) -> str:
    import planetary_computer

    # Looked up per call rather than captured by url_patcher, so that a replaced
    # planetary_computer.sign (a test's fake, a caller's own signer) is the one used.
    return str(planetary_computer.sign(url))
