"""Input of `cipherray run deid`: the table, the settings, the hierarchies, all checked.

Every check raises a named `DeidError` (`ColumnError`, `ParameterError`, ...) before
the job writes anything.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cipherray.protocols.deid import (
    ColumnError,
    EmptyInputError,
    HierarchyError,
    InputFileError,
    KeyFileError,
    NonNumericError,
    ParameterError,
)
from cipherray.protocols.deid.hierarchy import (
    DateHierarchy,
    Hierarchy,
    IntervalHierarchy,
    PrefixHierarchy,
    TreeHierarchy,
)

HIERARCHY_NAMES = ("prefix[:N]", "zip", "postcode", "date", "interval:W1,W2,...", "PATH.csv")


@dataclass
class DeidSettings:
    """What `cipherray run deid` does: the command line, parsed."""

    input: str
    quasi: list[str]
    k: int
    out: str
    sensitive: str | None = None
    l: int | None = None  # noqa: E741
    t: float | None = None
    suppression_limit: float = 0.05
    hierarchies: dict[str, str] = field(default_factory=dict)  # column -> spec
    pseudonymize: str | None = None
    key_file: str | None = None
    siv: bool = False
    drop: list[str] = field(default_factory=list)
    format: str = "csv"


def split_list(value: str | None) -> list[str]:
    """'age, zip,sex' -> ['age', 'zip', 'sex']."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def parse_hierarchy_args(items: list[str] | None) -> dict[str, str]:
    """['zip=prefix', 'dx=tree.csv'] -> {'zip': 'prefix', 'dx': 'tree.csv'}."""
    out: dict[str, str] = {}
    for item in items or []:
        column, sep, spec = item.partition("=")
        if not sep or not column.strip() or not spec.strip():
            raise HierarchyError(f"--hierarchy {item!r}: use COLUMN=SPEC, SPEC one of "
                                 f"{', '.join(HIERARCHY_NAMES)}")  # fmt: skip
        if column.strip() in out:
            raise HierarchyError(f"--hierarchy names column {column.strip()!r} twice")
        out[column.strip()] = spec.strip()
    return out


def check_settings(s: DeidSettings) -> None:
    """Checks that need no data: ranges and combinations of the options."""
    if not s.quasi:
        raise ParameterError("--quasi names no column")
    if s.k < 2:
        raise ParameterError(f"--k must be at least 2, got {s.k}")
    if s.l is not None:
        if s.l < 2:
            raise ParameterError(f"--l must be at least 2, got {s.l}")
        if s.sensitive is None:
            raise ParameterError("--l needs --sensitive (the column whose values must vary)")
    if s.t is not None:
        if not 0 < s.t <= 1:
            raise ParameterError(f"--t must lie in (0, 1], got {s.t}")
        if s.sensitive is None:
            raise ParameterError("--t needs --sensitive")
    if not 0 <= s.suppression_limit <= 1:
        raise ParameterError(f"--suppression-limit must lie in [0, 1], got {s.suppression_limit}")
    if (s.pseudonymize is None) != (s.key_file is None):
        raise ParameterError("--pseudonymize and --key-file go together")
    if s.siv and s.pseudonymize is None:
        raise ParameterError("--siv applies to --pseudonymize")
    roles = [c for c in [*s.quasi, s.sensitive, s.pseudonymize] if c]
    twice = sorted({c for c in roles if roles.count(c) > 1})
    if twice:
        raise ParameterError(f"column(s) {twice} have two roles (quasi / sensitive / pseudonym)")
    kept_out = sorted(set(s.drop) & set(roles))
    if kept_out:
        raise ParameterError(f"--drop names column(s) {kept_out} that the release needs")
    if s.key_file is not None:
        key = Path(s.key_file)
        if not key.exists() and not key.parent.is_dir():
            raise KeyFileError(f"key file {key}: folder {key.parent} does not exist")
    for column in s.hierarchies:
        if column not in s.quasi:
            raise ParameterError(f"--hierarchy {column}=...: {column!r} is not a --quasi column")
    if s.format not in ("csv", "parquet"):
        raise ParameterError(f"--format must be csv or parquet, got {s.format!r}")


def _file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise InputFileError(f"{path}: unknown file type {suffix!r} (use .csv or .parquet)")


def _as_text(s: DeidSettings) -> list[str]:
    """Columns read as text: identifiers and prefix-generalised codes (ZIP '02139')."""
    prefix = [c for c, spec in s.hierarchies.items() if _hierarchy_kind(spec) == "prefix"]
    return [c for c in [s.pseudonymize, *prefix] if c]


def read_table(s: DeidSettings) -> pd.DataFrame:
    """The input table, every named column checked to exist; EmptyInputError if no rows."""
    path = Path(s.input)
    if not path.is_file():
        raise InputFileError(f"input file {path} does not exist")
    fmt = _file_format(path)
    text = _as_text(s)
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            header = pd.read_csv(path, nrows=0).columns
            df = pd.read_csv(path, dtype={c: str for c in text if c in header})
    except pd.errors.EmptyDataError:
        raise EmptyInputError(f"{path} is empty") from None
    except (ValueError, OSError) as e:
        raise InputFileError(f"{path} cannot be read: {type(e).__name__}: {e}") from None
    named = [*s.quasi, s.sensitive, s.pseudonymize, *s.drop]
    columns = [str(c) for c in df.columns]
    for column in (c for c in named if c):
        if column not in df.columns:
            close = difflib.get_close_matches(column, columns, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ColumnError(f"{path}: no column {column!r}{hint}")
    if len(df) == 0:
        raise EmptyInputError(f"{path} has no rows")
    if s.k > len(df):
        raise ParameterError(f"--k {s.k} is larger than the table ({len(df)} rows in {path})")
    if s.l is not None:
        distinct = df[s.sensitive].nunique(dropna=False)
        if s.l > distinct:
            raise ParameterError(
                f"--l {s.l} exceeds the {distinct} distinct values of {s.sensitive!r} in {path}"
            )
    for c in text:  # Parquet keeps its types: codes and identifiers as text here too
        if pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].map(str).where(df[c].notna(), None)
    return df


def _hierarchy_kind(spec: str) -> str:
    name = spec.split(":", 1)[0].lower()
    if name in ("prefix", "zip", "postcode"):
        return "prefix"
    if name in ("date", "interval"):
        return name
    if spec.lower().endswith(".csv"):
        return "tree"
    return "unknown"


def build_hierarchies(s: DeidSettings, df: pd.DataFrame) -> dict[str, Hierarchy]:
    """The hierarchy of each `--hierarchy` column; numeric / date columns checked."""
    out: dict[str, Hierarchy] = {}
    for column, spec in s.hierarchies.items():
        kind = _hierarchy_kind(spec)
        _, _, arg = spec.partition(":")
        if kind == "unknown":
            raise HierarchyError(f"--hierarchy {column}={spec}: unknown hierarchy; use one of "
                                 f"{', '.join(HIERARCHY_NAMES)}")  # fmt: skip
        if kind == "prefix":
            present = df[column].dropna().astype(str)
            longest = int(present.str.len().max()) if len(present) else 1
            out[column] = PrefixHierarchy(_int_arg(column, spec, arg) if arg else max(longest, 1))
        elif kind == "date":
            df[column] = _dates(df[column], column, s.input)
            out[column] = DateHierarchy()
        elif kind == "interval":
            widths = _widths(column, spec, arg)
            df[column] = _numbers(df[column], column, s.input)
            out[column] = IntervalHierarchy(widths)
        else:
            if not Path(spec).is_file():
                raise HierarchyError(f"--hierarchy {column}={spec}: no such file")
            tree = TreeHierarchy.from_csv(spec)
            out[column] = tree
            tree.generalize(df[column].dropna().to_numpy(), 0)  # every value is a leaf
    return out


def _int_arg(column: str, spec: str, arg: str) -> int:
    try:
        return int(arg)
    except ValueError:
        raise HierarchyError(f"--hierarchy {column}={spec}: {arg!r} is not an integer") from None


def _widths(column: str, spec: str, arg: str) -> list[float]:
    try:
        widths = [float(w) for w in arg.split(",") if w.strip()]
    except ValueError:
        raise HierarchyError(f"--hierarchy {column}={spec}: widths must be numbers") from None
    if not widths:
        raise HierarchyError(f"--hierarchy {column}={spec}: give widths, e.g. interval:5,10,20")
    return widths


def _numbers(col: pd.Series, column: str, path: str) -> pd.Series:
    """The column as numbers, or NonNumericError naming the file, column and first row."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col
    numbers = pd.to_numeric(col, errors="coerce")
    bad = numbers.isna() & col.notna()
    return _checked(numbers, bad, column, path, "numbers", "a numeric hierarchy")


def _dates(col: pd.Series, column: str, path: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        return col
    dates = pd.to_datetime(col, errors="coerce")
    bad = dates.isna() & col.notna()
    return _checked(dates, bad, column, path, "dates", "the date hierarchy")


def _checked(values: pd.Series, bad: pd.Series, column: str, path: str, what: str,
             needed: str) -> pd.Series:  # fmt: skip
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise NonNumericError(
            f"{path}: column {column!r} has {int(bad.sum())} value(s) that are not {what} "
            f"(first at data row {first + 1}); {needed} needs {what}"
        )
    return values


def settings_from_args(args: Any) -> DeidSettings:
    """The parsed command line as settings (nothing checked yet)."""
    return DeidSettings(
        input=args.input,
        quasi=split_list(args.quasi),
        k=args.k,
        out=args.out,
        sensitive=args.sensitive,
        l=args.l,
        t=args.t,
        suppression_limit=args.suppression_limit,
        hierarchies=parse_hierarchy_args(args.hierarchy),
        pseudonymize=args.pseudonymize,
        key_file=args.key_file,
        siv=args.siv,
        drop=split_list(args.drop),
        format=args.format,
    )
