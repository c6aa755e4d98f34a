"""Workloads: jobs composed of runtime + protocols, each with a config, a report and a
CLI verb (see cli.py)."""

from __future__ import annotations

from typing import Any


def silo_options(cfg: Any) -> dict:
    """The cross-silo keywords of `cr.init` from a workload config's `party`, `addresses`
    and `tls` fields (none in simulation mode)."""
    if getattr(cfg, "party", None) is None:
        return {}
    return {"party": cfg.party, "addresses": cfg.addresses, "tls": cfg.tls}
