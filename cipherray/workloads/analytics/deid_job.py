"""`cipherray run deid`: de-identify one table for release.

    cipherray run deid --input data.csv --quasi age,zip,sex --sensitive diagnosis --k 5 \\
        --l 2 --hierarchy zip=prefix --pseudonymize patient_id --key-file patients.key \\
        --out release/

1. Read the CSV or Parquet file and check every setting against it (named errors, see
   `deid_input`); nothing is written before all checks pass.
2. Generalise the quasi-identifiers with Mondrian (k-anonymity, distinct ℓ-diversity and
   t-closeness as split constraints, the suppression limit; `protocols/deid/mondrian.py`).
3. Replace the identifier column by keyed pseudonyms: HMAC-SHA-256 tokens, or with
   `--siv` deterministic AES-SIV tokens that the key holder can reverse. The key file is
   created (mode 0600, key from `os.urandom`) if it does not exist.
4. Write OUT/deidentified.csv (or .parquet; suppressed rows left out), OUT/report.json,
   OUT/report.md and one histogram PNG per quasi-identifier, each file written whole or
   not at all.

One party, one process: the table never leaves the machine it is read on, so the job runs
without Ray. Joint pseudonyms across parties: `workloads/analytics/pseudonyms.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cipherray.protocols.deid import (
    DeidError,
    SivPseudonymizer,
    hmac_tokens,
    load_key,
    mondrian,
    new_key_file,
    risk_report,
)
from cipherray.workloads import files
from cipherray.workloads.analytics import deid_report
from cipherray.workloads.analytics.deid_input import (
    HIERARCHY_NAMES,
    DeidSettings,
    build_hierarchies,
    check_settings,
    read_table,
    settings_from_args,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="the table (.csv or .parquet)")
    parser.add_argument("--quasi", required=True, help="quasi-identifier columns: a,b,c")
    parser.add_argument("--sensitive", default=None, help="the sensitive column (for ℓ and t)")
    parser.add_argument("--k", type=int, required=True, help="k-anonymity: rows per class")
    parser.add_argument("--l", type=int, default=None, help="distinct ℓ-diversity")
    parser.add_argument("--t", type=float, default=None, help="t-closeness (EMD bound)")
    parser.add_argument(
        "--suppression-limit",
        type=float,
        default=0.05,
        help="largest fraction of rows that may be suppressed (0.05)",
    )
    parser.add_argument(
        "--hierarchy",
        action="append",
        metavar="COLUMN=SPEC",
        help=f"generalisation of a quasi-identifier: {', '.join(HIERARCHY_NAMES)} (repeat)",
    )
    parser.add_argument("--pseudonymize", default=None, help="the identifier column")
    parser.add_argument("--key-file", default=None, help="pseudonym key (created if missing)")
    parser.add_argument("--siv", action="store_true", help="AES-SIV: reversible by the key holder")
    parser.add_argument("--drop", default=None, help="columns left out of the release: a,b")
    parser.add_argument("--format", default="csv", choices=["csv", "parquet"])
    parser.add_argument("--out", required=True, help="output folder")


def main(args: argparse.Namespace) -> int:
    try:
        report = run(settings_from_args(args))
    except DeidError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print(
        f"k = {report['k']}" + (f", ℓ = {report['l']}" if "l" in report else "")
        + (f", t = {report['t']:.3f}" if "t" in report else "")
        + f"; {report['rows_out']} of {report['rows_in']} rows released "
        f"({report['suppressed']} suppressed); {out / report['output']}, "
        f"{out / 'report.json'}, {out / 'report.md'}"
    )  # fmt: skip
    return 0


def run(s: DeidSettings) -> dict[str, Any]:
    """The whole job (steps in the module docstring); the report it wrote."""
    t0 = time.perf_counter()
    check_settings(s)
    df = read_table(s)
    hierarchies = build_hierarchies(s, df)
    key_kind = "siv" if s.siv else "hmac"
    key = load_key(s.key_file, key_kind) if s.key_file and Path(s.key_file).exists() else None
    result = mondrian(
        df, s.quasi, s.k, sensitive=s.sensitive, l=s.l, t=s.t, hierarchies=hierarchies,
        suppression_limit=s.suppression_limit,
    )  # fmt: skip
    risks = risk_report(result)
    kept = result.class_id >= 0
    table = result.table.loc[kept].drop(columns=s.drop)
    created = False
    if s.pseudonymize is not None:  # every check passed: the key file may be made now
        if key is None:
            new_key_file(s.key_file, key_kind)
            key, created = load_key(s.key_file, key_kind), True
        ids = table[s.pseudonymize]
        table[s.pseudonymize] = (
            SivPseudonymizer(key, context=s.pseudonymize).encrypt(ids)
            if s.siv
            else hmac_tokens(ids, key)
        )
    report = _report(s, result, risks, len(df), int(kept.sum()), created)
    report["seconds"] = time.perf_counter() - t0
    write_outputs(s, table, report)
    return report


def _report(s: DeidSettings, result: Any, risks: dict, rows_in: int, rows_out: int,
            created: bool) -> dict[str, Any]:  # fmt: skip
    report: dict[str, Any] = {
        "input": s.input,
        "output": f"deidentified.{s.format}",
        "rows_in": rows_in,
        "rows_out": rows_out,
        "suppressed": result.n_suppressed,
        "suppression_limit": s.suppression_limit,
        "quasi_identifiers": s.quasi,
        "sensitive": s.sensitive,
        "hierarchies": s.hierarchies,
        "k_requested": s.k,
        "k": risks["k"],
        "classes": risks["classes"],
        "prosecutor": risks["prosecutor"],
        "journalist": risks["journalist"],
        "marketer": risks["marketer"],
        "ncp": risks["ncp"],
        "gcp": risks["gcp"],
    }
    if s.sensitive is not None:
        report["l_requested"] = s.l
        report["l"] = risks["l"]
    if s.t is not None:
        report["t_requested"] = s.t
        report["t"] = risks["t"]
    if s.pseudonymize is not None:
        report["pseudonyms"] = {
            "column": s.pseudonymize,
            "method": "AES-SIV (reversible by the key holder)" if s.siv else "HMAC-SHA-256",
            "key_file": s.key_file,
            "key_created": created,
        }
    if s.drop:
        report["dropped_columns"] = s.drop
    return report


def write_outputs(s: DeidSettings, table: pd.DataFrame, report: dict[str, Any]) -> None:
    """The released table, report.json, report.md and the histograms, each atomically."""
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    with files.atomic_output(out / report["output"]) as tmp:
        if s.format == "parquet":
            table.reset_index(drop=True).to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
    report["plots"], note = deid_report.histograms(out, table, s.quasi)
    if note:
        report["plots_note"] = note
    files.write_text(out / "report.json", json.dumps(report, indent=1, default=_plain) + "\n")
    files.write_text(out / "report.md", deid_report.markdown(report))


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    return str(x)
