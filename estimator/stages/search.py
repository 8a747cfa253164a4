"""Search stage: the only module that talks HTTP to STAC APIs.

``search_items(stac, bbox, period)`` pages through an Item Search with pystac-client and
returns the scenes within the cloud limit. The cloud filter runs on the server only when
the API conforms to the Filter (CQL2) or Query extension; otherwise (e.g. ``rustac serve``,
which silently returns nothing for filters) every page is fetched and filtered here.
"""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pystac
import requests
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from tqdm.auto import tqdm
from urllib3 import BaseHTTPResponse
from urllib3.util.retry import Retry

from estimator.config import PeriodConfig, StacConfig
from estimator.errors import ConfigError, NoScenesFoundError, StacConnectionError
from estimator.stages.providers import get_provider, normalize_item
from estimator.warnings import ClientSideFilterWarning

__all__ = ["SearchResult", "cloud_filter_mode", "search_items"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    """Scenes returned by a search, with what happened on the way."""

    items: tuple[pystac.Item, ...]
    """Items within the cloud limit, in the order the API returned them."""
    n_returned: int
    """Items the API returned (before any client-side filtering)."""
    n_too_cloudy: int
    """Items dropped on the client for exceeding ``max_cloud_cover``."""
    filter_mode: str
    """Where the cloud filter ran: ``filter`` (CQL2), ``query`` or ``client``."""
    pages: int
    """Number of result pages fetched."""


def cloud_filter_mode(client: Client) -> str:
    """Pick where to apply the cloud filter from the API's ``conformsTo``."""
    if client.conforms_to(ConformanceClasses.FILTER):
        return "filter"
    if client.conforms_to(ConformanceClasses.QUERY):
        return "query"
    return "client"


#: Statuses that mean "try again later": rate limited, or a server or gateway hiccup.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Attempts after the first, per request (landing page, conformance, each search page).
MAX_RETRIES = 5
#: A refused or unresolvable address is nearly always a wrong URL: fail fast on it.
MAX_CONNECT_RETRIES = 2
#: Exponential backoff 0, 1, 2, 4, 8 s (factor * 2**(n-1), no wait before the first retry).
BACKOFF_FACTOR_S = 0.5
BACKOFF_MAX_S = 10.0
#: A server's Retry-After is honoured up to this; a hostile 3600 must not park a job.
RETRY_AFTER_MAX_S = 30.0


class _BoundedRetry(Retry):
    """urllib3 ``Retry`` whose ``Retry-After`` waits are capped at :data:`RETRY_AFTER_MAX_S`.

    urllib3 >= 2.6 has ``retry_after_max`` for this; older 2.x versions, which requests
    still accepts, would sleep as long as the server asks.
    """

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, RETRY_AFTER_MAX_S)


def _stac_retry() -> Retry:
    """The retry policy of every STAC request: bounded, with backoff, Retry-After capped.

    Search pages are POSTs, retried too: an Item Search is a read, and a retried page
    request resends the same body (the same page token), so no page is lost or repeated.
    Worst case per request: six timeouts plus 15 s of backoff, or up to 150 s of waiting
    when the server keeps asking for a Retry-After of 30 s or more.
    """
    return _BoundedRetry(
        total=MAX_RETRIES,
        connect=MAX_CONNECT_RETRIES,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"POST"},
        backoff_factor=BACKOFF_FACTOR_S,
        backoff_max=BACKOFF_MAX_S,
        respect_retry_after_header=True,
    )


def _reason(e: BaseException, limit: int = 120) -> str:
    """First line of an error; urllib3's "Max retries exceeded ..." reduced to its cause."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    # e.g. "HTTPConnectionPool(host=..., port=...): Max retries exceeded with url: /search
    # (Caused by ResponseError('too many 503 error responses'))": the cause is the news.
    cause = re.search(r"Max retries exceeded .*\(Caused by \w+\((.*)\)\)$", text)
    if cause:
        detail = re.sub(r"^HTTPS?Connection\([^)]*\): ", "", cause.group(1).strip("'\""))
        text = "retries exhausted: " + detail
    return text[:limit]


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Attempts after the first for a response whose body broke off or is not JSON: urllib3
#: retries statuses and failed connections, not a body cut short after the headers.
BODY_RETRIES = 3
_BROKEN_BODY = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


class _WholeBodyStacApiIO(StacApiIO):
    """pystac-client's IO, retrying a request whose body arrives truncated or not as JSON
    (with the same backoff as the status retries)."""

    def request(self, href: str, method: str | None = None, headers: dict[str, str] | None = None,
                parameters: dict[str, Any] | None = None) -> str:
        attempt = 0
        while True:
            try:
                text = super().request(href, method=method, headers=headers, parameters=parameters)
                json.loads(text)
                return text
            except APIError as e:
                # Statuses and failed connections were retried by urllib3 already.
                if not isinstance(e.__context__, _BROKEN_BODY) or attempt == BODY_RETRIES:
                    raise
            except ValueError:
                if attempt == BODY_RETRIES:
                    raise APIError(f"{href}: the answer is not complete JSON after {BODY_RETRIES + 1} attempts") from None
            log.info("STAC response from %s broke off; retrying", href)
            time.sleep(min(BACKOFF_MAX_S, BACKOFF_FACTOR_S * 2**attempt))
            attempt += 1


def _raise_if_dead_loopback(url: str) -> None:
    if urlsplit(url).hostname in _LOOPBACK_HOSTS:
        raise StacConnectionError(
            f"cannot reach the STAC API at {url}: nothing answers at this loopback address (a demo's servers stop "
            "when it exits); serve the demo world again with `python -m estimator demo serve DIR`, or check stac.url"
        )


def _open(stac: StacConfig) -> Client:
    try:
        stac_io = _WholeBodyStacApiIO(timeout=stac.timeout_s, max_retries=_stac_retry())
        return Client.open(stac.url, stac_io=stac_io, timeout=stac.timeout_s)
    except requests.Timeout:
        raise StacConnectionError(
            f"cannot reach the STAC API at {stac.url} (no answer within {stac.timeout_s:g} s); check stac.url and the network"
        ) from None
    except requests.ConnectionError:
        _raise_if_dead_loopback(stac.url)
        raise StacConnectionError(
            f"cannot reach the STAC API at {stac.url} (connection failed); check stac.url and the network"
        ) from None
    except (requests.RequestException, APIError, OSError) as e:
        if getattr(e, "status_code", None) is None:
            _raise_if_dead_loopback(stac.url)
        reason = _reason(e)
        raise StacConnectionError(
            f"cannot reach the STAC API at {stac.url} ({reason}); check stac.url and the network"
        ) from None
    except (ValueError, pystac.STACError) as e:
        raise StacConnectionError(f"{stac.url} did not answer as a STAC API root ({e}); check stac.url") from None


def search_items(
    stac: StacConfig,
    bbox: Sequence[float],
    period: PeriodConfig,
    *,
    progress: bool = True,
) -> SearchResult:
    """Search ``stac.collection`` over ``bbox`` (lon/lat) and ``period``.

    Parameters
    ----------
    stac
        Endpoint, collection, cloud limit and page size.
    bbox
        ``(west, south, east, north)`` in degrees.
    period
        Inclusive date range.
    progress
        Show a progress bar counting items as pages arrive.

    Raises
    ------
    StacConnectionError
        The API cannot be reached or fails mid-search.
    ConfigError
        The collection does not exist at this API.
    NoScenesFoundError
        Nothing usable was found.
    """
    provider = get_provider(stac.provider)
    client = _open(stac)
    mode = cloud_filter_mode(client)
    kwargs: dict[str, Any] = {
        "collections": [stac.collection],
        "bbox": list(bbox),
        "datetime": f"{period.start.isoformat()}T00:00:00Z/{period.end.isoformat()}T23:59:59Z",
        "limit": stac.page_size,
    }
    if mode == "filter":
        kwargs["filter"] = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, stac.max_cloud_cover]}
        kwargs["filter_lang"] = "cql2-json"
    elif mode == "query":
        # A dict, not the string shorthand: pystac-client sends "eo:cloud_cover<20" as a string.
        kwargs["query"] = {"eo:cloud_cover": {"lte": stac.max_cloud_cover}}
    else:
        warnings.warn(
            f"{stac.url} does not support server-side filters; fetching all scenes and "
            "applying max_cloud_cover on the client",
            ClientSideFilterWarning,
            stacklevel=2,
        )

    items: list[pystac.Item] = []
    n_returned = n_cloudy = pages = 0
    try:
        search = client.search(**kwargs)
        bar = tqdm(desc="search", unit=" items", disable=not progress, leave=False)
        with bar:
            for page in search.pages():
                pages += 1
                for item in page.items:
                    n_returned += 1
                    bar.update(1)
                    # Provider conventions (asset names, offsets, proj:code) become ours here,
                    # once, so every later stage sees Earth Search v1 shaped items.
                    item = pystac.Item.from_dict(normalize_item(item.to_dict(transform_hrefs=False), provider))
                    cloud = item.properties.get("eo:cloud_cover")
                    if cloud is not None and float(cloud) > stac.max_cloud_cover:
                        n_cloudy += 1
                        continue
                    items.append(item)
    except APIError as e:
        msg = str(e).splitlines()[0][:200] if str(e) else "error"
        if "collection" in msg.lower() and ("not found" in msg.lower() or "404" in msg):
            raise ConfigError(f"collection '{stac.collection}' not found at {stac.url}; check stac.collection") from None
        raise StacConnectionError(f"STAC search at {stac.url} failed: {_reason(e, 200)}") from None
    except requests.RequestException as e:
        raise StacConnectionError(f"STAC search at {stac.url} failed mid-way ({type(e).__name__}); retry later") from None

    log.info("search: %d items returned over %d page(s), %d too cloudy (filter on %s)", n_returned, pages, n_cloudy, mode)
    if not items:
        why = (
            f"{n_returned} scene(s) found but all exceed max_cloud_cover={stac.max_cloud_cover}"
            if n_returned
            else "no scene intersects the regions in that period"
        )
        raise NoScenesFoundError(
            f"no usable scenes in collection '{stac.collection}' for {period.label}: {why}; "
            "widen the period, raise stac.max_cloud_cover, or check the regions"
        )
    return SearchResult(tuple(items), n_returned, n_cloudy, mode, pages)
