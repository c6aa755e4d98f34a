"""Configuration values: party specs and the network model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cipherray.runtime.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$")


@dataclass(frozen=True)
class PartySpec:
    """How many CPU workers a party's actor group has, and its GPU share."""

    name: str
    workers: int = 1
    gpus: float = 0.0
    clients: int = 0  # > 0: a population of that many virtual clients on the workers


def parse_populations(populations: Any, taken: set[str]) -> list[PartySpec]:
    """`{"phones": {"clients": 10000, "workers": 2}}`: virtual-client populations."""
    if populations is None:
        return []
    if not isinstance(populations, dict):
        raise ConfigError("populations must be a dict name -> {'clients': n, 'workers': k}")
    specs = []
    for name, opts in populations.items():
        opts = dict(opts or {})
        clients = opts.pop("clients", None)
        if not isinstance(clients, int) or clients < 1:
            raise ConfigError(f"population '{name}': clients must be an int >= 1, got {clients!r}")
        if name in taken:
            raise ConfigError(f"population name '{name}' is also a party")
        (spec,) = parse_parties({name: opts})
        specs.append(PartySpec(spec.name, spec.workers, spec.gpus, clients))
        taken.add(name)
    return specs


def parse_parties(parties: Any) -> list[PartySpec]:
    """Accept `["a", "b"]` or `{"a": {"workers": 2, "gpus": 0}, ...}`."""
    if isinstance(parties, str) or parties is None:
        raise ConfigError("parties must be a list of names or a dict name -> options")
    if isinstance(parties, dict):
        items = list(parties.items())
    else:
        items = [(p, {}) for p in parties]
    if not items:
        raise ConfigError("at least one party is needed")
    specs, seen = [], set()
    for name, opts in items:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"bad party name {name!r}: use a letter then letters, digits, '_' or '-'"
            )
        if name in seen:
            raise ConfigError(f"party name '{name}' is used twice")
        seen.add(name)
        opts = dict(opts or {})
        unknown = set(opts) - {"workers", "gpus"}
        if unknown:
            raise ConfigError(f"party '{name}': unknown options {sorted(unknown)}")
        workers = opts.get("workers", 1)
        gpus = opts.get("gpus", 0)
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"party '{name}': workers must be an int >= 1, got {workers!r}")
        if not isinstance(gpus, int | float) or gpus < 0:
            raise ConfigError(f"party '{name}': gpus must be >= 0, got {gpus!r}")
        specs.append(PartySpec(name, workers, float(gpus)))
    return specs


@dataclass(frozen=True)
class NetworkModel:
    """Delay added to every cross-party message: latency + bytes / bandwidth.

    Presets: "lan" = 0.5 ms, 1,000 Mbit/s; "wan" = 40 ms, 100 Mbit/s.
    """

    latency_ms: float
    bandwidth_mbps: float
    name: str = "custom"

    def delay_s(self, nbytes: int) -> float:
        return self.latency_ms / 1e3 + nbytes * 8 / (self.bandwidth_mbps * 1e6)


PRESETS = {
    "lan": NetworkModel(0.5, 1000.0, "lan"),
    "wan": NetworkModel(40.0, 100.0, "wan"),
}


def parse_network(network: Any) -> NetworkModel | None:
    if network is None or network is False or network == "off":
        return None
    if isinstance(network, NetworkModel):
        return network
    if isinstance(network, str):
        if network not in PRESETS:
            raise ConfigError(f"unknown network model {network!r}; use one of {sorted(PRESETS)}")
        return PRESETS[network]
    if isinstance(network, dict):
        try:
            lat = float(network["latency_ms"])
            bw = float(network["bandwidth_mbps"])
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError("network dict needs numeric 'latency_ms' and 'bandwidth_mbps'") from e
        if lat < 0 or bw <= 0:
            raise ConfigError("network latency must be >= 0 and bandwidth > 0")
        return NetworkModel(lat, bw)
    raise ConfigError(f"bad network model {network!r}")
