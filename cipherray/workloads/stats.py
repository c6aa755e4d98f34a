"""Joint statistics of hospitals on secret shares (`cipherray run stats`, or `quickstart`).

With `--input PARTY=PATH ...` the verb runs joint statistics over the parties' own files
instead (`workloads/analytics/stats_job.py`); without, this synthetic demo.

Each hospital holds a table of patient counts and bed-days per diagnosis (generated
here, synthetic). The joint totals per diagnosis and the mean per hospital are
computed on additive shares and revealed to the first hospital only; no hospital's
table leaves it in the clear.

Steps:
1. each hospital builds its table (stays at the hospital);
2. each hospital secret-shares its numeric columns among all hospitals;
3. the hospitals add the shares (local, no messages);
4. the sum and the mean over hospitals are revealed to the first hospital;
5. the first hospital formats the result table.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cipherray.workloads import silo_options

DIAGNOSES = [
    "I10 hypertension",
    "E11 type-2 diabetes",
    "J45 asthma",
    "I48 atrial fibrillation",
    "N18 chronic kidney disease",
    "J44 COPD",
    "F32 depression",
    "M54 back pain",
    "C50 breast cancer",
    "I21 myocardial infarction",
    "K35 appendicitis",
    "S72 femur fracture",
]


@dataclass
class StatsConfig:
    hospitals: list[str] = field(default_factory=lambda: ["h1", "h2", "h3"])
    diagnoses: int = 12
    seed: int = 7  # seeds the *synthetic data* only; shares use the CSPRNG
    backend: str = "ray"
    address: str | None = None
    network: Any = None
    workers: int = 1
    timeout_s: float = 120.0
    progress: bool = True
    graph: str | None = None  # write the task graph here (.dot, or .json)
    # cross-silo: this process runs one hospital; the others run the same job
    party: str | None = None
    addresses: dict | None = None  # {hospital: "host:port"} for every hospital
    tls: Any = None  # cr.TLS or the directory `cipherray certs` wrote


def hospital_table(hospital_index: int, diagnoses: int, seed: int) -> pd.DataFrame:
    """Synthetic per-diagnosis counts for one hospital (deterministic per seed)."""
    gen = np.random.default_rng([seed, hospital_index])  # synthetic data, not secrets
    size = gen.integers(200, 2000)
    patients = gen.poisson(size * gen.dirichlet(np.ones(diagnoses)))
    bed_days = np.round(patients * gen.uniform(1.5, 9.0, diagnoses), 1)
    names = (DIAGNOSES * (diagnoses // len(DIAGNOSES) + 1))[:diagnoses]
    return pd.DataFrame({"diagnosis": names, "patients": patients, "bed_days": bed_days})


def _numeric(table: pd.DataFrame) -> np.ndarray:
    return table[["patients", "bed_days"]].to_numpy(dtype=np.float64)


def _result_table(totals: np.ndarray, means: np.ndarray, diagnoses: int) -> pd.DataFrame:
    names = (DIAGNOSES * (diagnoses // len(DIAGNOSES) + 1))[:diagnoses]
    return pd.DataFrame(
        {
            "diagnosis": names,
            "patients_total": np.rint(totals[:, 0]).astype(np.int64),
            "bed_days_total": np.round(totals[:, 1], 1),
            "patients_mean": np.round(means[:, 0], 2),
            "bed_days_mean": np.round(means[:, 1], 2),
        }
    )


def run(config: StatsConfig | None = None, rt: Any = None) -> dict:
    """Run the joint statistics; returns a report dict (result table, ledger, times)."""
    import cipherray as cr

    cfg = config or StatsConfig()
    t0 = time.perf_counter()
    own_rt = rt is None
    if own_rt:
        rt = cr.init(
            {h: {"workers": cfg.workers} for h in cfg.hospitals},
            address=cfg.address,
            backend=cfg.backend,
            network=cfg.network,
            timeout_s=cfg.timeout_s,
            driver_as=cfg.hospitals[0],  # this script acts for the first hospital
            **silo_options(cfg),
        )
    t_init = time.perf_counter() - t0
    steps = tqdm(total=5, desc="stats", disable=not cfg.progress, leave=False)
    try:
        hospitals = [rt.party(h) for h in cfg.hospitals]
        mpc = rt.mpc(*hospitals)
        # 1. tables stay at each hospital
        tables = [h(hospital_table)(i, cfg.diagnoses, cfg.seed) for i, h in enumerate(hospitals)]
        steps.update()
        # 2. secret-share the numeric columns: counts and bed-days per diagnosis, which
        #    each hospital declares as aggregates of its patients
        shared = [h(_numeric, declare="aggregate")(t).to(mpc) for h, t in zip(hospitals, tables)]
        steps.update()

        # 3. joint statistics on shares
        @mpc
        def joint_stats(*xs):
            total = xs[0]
            for x in xs[1:]:
                total = total + x
            return total, total / len(xs)

        total, mean = joint_stats(*shared)
        steps.update()
        # 4. reveal to the first hospital only
        first = hospitals[0]
        total_at_first = total.reveal_to(first)
        mean_at_first = mean.reveal_to(first)
        steps.update()
        # 5. the first hospital formats the result (for the driver, which acts for it)
        result_ref = first(_result_table)(total_at_first, mean_at_first, cfg.diagnoses)
        result = rt.get(result_ref) if rt.is_local(first) else None  # cross-silo: at first
        steps.update()
        elapsed = time.perf_counter() - t0
        report = {
            "config": {
                k: v for k, v in asdict(cfg).items() if k not in ("progress", "graph", "tls")
            },
            "party": rt.here,
            "result": result,
            "ledger": rt.ledger.summary(),
            "ledger_text": rt.ledger.report(),
            "reveals": len(rt.audit),
            "seconds_total": elapsed,
            "seconds_init": t_init,
            "backend": rt.backend,
        }
        if cfg.graph:
            rt.graph.write(cfg.graph)
        return report
    finally:
        steps.close()
        if own_rt:
            rt.shutdown()


# -- `cipherray run stats` ----------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cipherray.cli import add_runtime_arguments

    parser.add_argument(
        "--parties", default="h1,h2,h3", help="comma-separated hospital names (h1,h2,h3)"
    )
    add_runtime_arguments(parser, workers=1, silo=True)
    from cipherray.workloads.analytics import stats_job

    stats_job.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from cipherray.cli import runtime_options, write_json

    if args.input:  # joint statistics over the parties' files
        from cipherray.workloads.analytics import stats_job

        return stats_job.main(args)

    options = runtime_options(args)
    # cross-silo: the hospitals are the parties of --addresses, in its order (the same
    # command line at every hospital)
    hospitals = list(options["addresses"]) if "party" in options else args.parties.split(",")
    cfg = StatsConfig(hospitals=hospitals, graph=args.graph, **options)
    report = run(cfg)
    first = cfg.hospitals[0]
    print(f"Joint statistics of {len(cfg.hospitals)} hospitals, revealed to {first} only:\n")
    if report["result"] is None:
        print(f"(this process runs {report['party']}; the result is at {first})")
    else:
        print(report["result"].to_string(index=False))
    print("\nLedger (what crossed between parties):")
    print(report["ledger_text"])
    print(
        f"\nreveals audited: {report['reveals']}   backend: {report['backend']}   "
        f"time: {report['seconds_total']:.2f} s (start-up {report['seconds_init']:.2f} s)"
    )
    if args.graph:
        print(f"task graph written to {args.graph}")
    if args.json:
        write_json(
            args.json,
            {
                "result": None
                if report["result"] is None
                else report["result"].to_dict(orient="records"),
                "ledger": report["ledger"].to_dict(orient="records"),
                "seconds_total": report["seconds_total"],
                "seconds_init": report["seconds_init"],
                "backend": report["backend"],
            },
        )
    return 0
