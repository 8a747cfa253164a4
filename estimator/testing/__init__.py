"""Loopback servers for the demo, the tests and the benchmarks: a real STAC API
(``rustac serve``), a Range-capable COG server and a fault-injecting HTTP proxy.

Not part of the product: it needs the ``[demo]`` extra (rustac, starlette, uvicorn), and
nothing in the estimator imports it but the demo. Imports only the foundation.
"""

from __future__ import annotations

from estimator.lazy import exports

__all__ = [
    "FaultPlan",
    "FaultProxy",
    "FaultRule",
    "ServedWorld",
    "Server",
    "ServerStartError",
    "free_port",
    "read_world_stac",
    "relocate",
    "serve_world",
    "serve_world_with_faults",
    "start_fault_proxy",
    "start_file_server",
    "start_stac_server",
    "track",
]

_WHERE = {
    "FaultPlan": "faults",
    "FaultProxy": "faults",
    "FaultRule": "faults",
    "ServedWorld": "servers",
    "Server": "servers",
    "ServerStartError": "servers",
    "free_port": "servers",
    "read_world_stac": "servers",
    "relocate": "servers",
    "serve_world": "servers",
    "serve_world_with_faults": "faults",
    "start_fault_proxy": "faults",
    "start_file_server": "servers",
    "start_stac_server": "servers",
    "track": "servers",
}

__getattr__, __dir__ = exports(__name__, _WHERE)
