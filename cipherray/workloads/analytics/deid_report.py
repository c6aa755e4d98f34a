"""report.md and the histograms of `cipherray run deid`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cipherray.workloads import files

MAX_BARS = 40  # labels shown per histogram (the most frequent ones)


def histograms(out: Path, table: pd.DataFrame, quasi: list[str]) -> tuple[list[str], str | None]:
    """One bar chart per quasi-identifier: released rows per generalised label. Returns
    the file names and, without matplotlib, a note saying why there are none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib is not installed: no histograms (pip install matplotlib)"
    names = []
    for column in quasi:
        counts = table[column].astype(str).value_counts()
        shown = counts.iloc[:MAX_BARS].sort_index()
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(shown) + 2), 3.6))
        ax.bar(range(len(shown)), shown.to_numpy())
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels(shown.index, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("rows")
        more = f" ({MAX_BARS} most frequent of {len(counts)})" if len(counts) > MAX_BARS else ""
        ax.set_title(f"{column}, generalised{more}")
        fig.tight_layout()
        name = f"hist_{_safe(column)}.png"
        with files.atomic_output(out / name) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
        names.append(name)
    return names, None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def markdown(report: dict[str, Any]) -> str:
    """The report as a short markdown page."""
    lines = [f"# De-identification of {report['input']}", ""]
    lines += [
        f"{report['rows_out']} of {report['rows_in']} rows released in "
        f"`{report['output']}` ({report['suppressed']} suppressed, limit "
        f"{report['suppression_limit']:.1%}); {report['classes']} equivalence classes on "
        f"{', '.join(report['quasi_identifiers'])}.",
        "",
        "| privacy model | requested | achieved |",
        "|---|---|---|",
        f"| k-anonymity | {report['k_requested']} | {report['k']} |",
    ]
    if "l" in report:
        lines.append(f"| distinct ℓ-diversity ({report['sensitive']}) | "
                     f"{report['l_requested'] or '-'} | {report['l']} |")  # fmt: skip
    if "t" in report:
        lines.append(f"| t-closeness ({report['sensitive']}) | {report['t_requested']} | "
                     f"{report['t']:.4f} |")  # fmt: skip
    lines += ["", "| risk (ARX models) | highest | average | records at risk (> 0.2) |",
              "|---|---|---|---|"]  # fmt: skip
    for model in ("prosecutor", "journalist"):
        r = report[model]
        lines.append(f"| {model} | {_fmt(r['highest'])} | {_fmt(r['average'])} | "
                     f"{_fmt(r['records_at_risk'])} |")  # fmt: skip
    lines += [f"| marketer | | {_fmt(report['marketer'])} | |", ""]
    lines += ["Utility loss (normalised certainty penalty; suppressed rows count 1):", ""]
    lines += ["| quasi-identifier | NCP |", "|---|---|"]
    lines += [f"| {q} | {_fmt(v)} |" for q, v in report["ncp"].items()]
    lines += [f"| **GCP (mean)** | {_fmt(report['gcp'])} |", ""]
    if report.get("hierarchies"):
        shown = ", ".join(f"{c} = {h}" for c, h in report["hierarchies"].items())
        lines += [f"Hierarchies: {shown}.", ""]
    p = report.get("pseudonyms")
    if p:
        made = " (created by this run)" if p["key_created"] else ""
        lines += [f"Pseudonyms: column `{p['column']}` replaced by {p['method']} tokens under "
                  f"the key in `{p['key_file']}`{made}.", ""]  # fmt: skip
    if report.get("plots"):
        lines += ["Histograms of the released quasi-identifiers:", ""]
        lines += [f"![{name}]({name})" for name in report["plots"]] + [""]
    if report.get("plots_note"):
        lines += [f"Note: {report['plots_note']}.", ""]
    lines.append(f"Time: {report['seconds']:.2f} s.")
    return "\n".join(lines) + "\n"
