"""Nothing outside cipherray/runtime/ uses the runtime's private internals.

The runtime's public API is what workloads, benchmarks and tests build on (`party(fn)`,
`rt.send`, `rt.wait`, `rt.get`, `ref.to`, `reveal_to`, ...). Its private names (`rt._step`,
`x._shares`, `ref._h`, `he._sk`, `mpc._check_member_value`, ...) bypass the policy, the
ledger or the audit, or break whenever the runtime changes inside. This test reads every
.py file under cipherray/ (outside cipherray/runtime/), bench/ and tests/ with `ast` and
fails on:

- an attribute access `X._name` (single underscore, not a dunder) on anything other
  than `self`/`cls` where `_name` is a private member (method, attribute, slot) of a
  class defined in cipherray/runtime/*.py; also `getattr(X, "_name")`;
- any `X._name` where `X` is bound by an import of `cipherray` or `cipherray.runtime...`
  (`cr._x`, `shared._bshape`, `SharedRef._wrap`) or is named `rt` / `runtime` (also a
  name the runtime no longer has: `rt._run_at`), and `from cipherray.runtime... import _x`;
- building runtime refs by hand (`PartyRef(...)`, `SharedRef(...)`, `EncryptedRef(...)`,
  `Handle(...)`): refs come from the runtime's own calls.

Some private names of the runtime are also private names of other classes (the Paillier
`CipherArray` has its own `_wrap` and `_pk`). Such an access belongs to the other class,
and is not flagged, only when the receiver is visibly of that class: the class itself
(`CipherArray._wrap`, defined in the file or imported from outside the runtime), a name
bound to an import from outside the runtime (a module alias `B._backend`), or a
parameter of the enclosing function annotated with a class that has the member
(`def _check_key(self, other: CipherArray)`: `other._pk`; `arrays: list[CipherArray]`:
`arrays[0]._pk`). Nothing else is exempt, and there is no allow-list.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "cipherray" / "runtime"
SCANNED = (ROOT / "cipherray", ROOT / "bench", ROOT / "tests")
REF_CLASSES = {"PartyRef", "SharedRef", "EncryptedRef", "Handle"}
# what the project calls a Runtime everywhere (README, workloads, benchmarks, tests): any
# private attribute on these is the runtime's, also one it no longer has (`rt._run_at`)
RUNTIME_NAMES = {"rt", "runtime"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _class_members(tree: ast.AST) -> dict[str, set[str]]:
    """Private member names of every class in `tree`: methods and properties, class
    attributes, `__slots__` entries and attributes assigned on self/cls."""
    out: dict[str, set[str]] = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        names: set[str] = set()
        for node in cls.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for t in targets:
                if isinstance(t, ast.Name):
                    names.add(t.id)
                    if t.id == "__slots__" and isinstance(node.value, ast.Tuple | ast.List):
                        names |= {
                            e.value
                            for e in node.value.elts
                            if isinstance(e, ast.Constant) and isinstance(e.value, str)
                        }
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                names.add(node.attr)
        out[cls.name] = {n for n in names if _private(n)}
    return out


def runtime_private_names() -> set[str]:
    names: set[str] = set()
    for path in sorted(RUNTIME.glob("*.py")):
        for members in _class_members(ast.parse(path.read_text(), str(path))).values():
            names |= members
    return names


def _scanned_files() -> list[Path]:
    here = Path(__file__).resolve()
    files = []
    for top in SCANNED:
        for path in sorted(top.rglob("*.py")):
            if path.resolve() == here or RUNTIME in path.resolve().parents:
                continue
            if any(part.startswith(".") for part in path.relative_to(top).parts):
                continue  # virtual environments (bench/flower_peer/.venv) and other hidden dirs
            files.append(path)
    return files


def non_runtime_class_members() -> dict[str, set[str]]:
    """Class name -> private members, for every class outside the runtime (by name)."""
    out: dict[str, set[str]] = {}
    for path in _scanned_files():
        for cls, members in _class_members(ast.parse(path.read_text(), str(path))).items():
            out.setdefault(cls, set()).update(members)
    return out


def _is_runtime_module(module: str | None, level: int) -> bool:
    if level or not module:  # relative imports stay inside their (non-runtime) package
        return False
    return module == "cipherray" or module.startswith("cipherray.runtime")


def _annotation_names(ann: ast.AST | None) -> set[str]:
    """The class names an annotation mentions (`CipherArray`, `list[CipherArray]`,
    `"CipherArray | None"`)."""
    if ann is None:
        return set()
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        try:
            ann = ast.parse(ann.value, mode="eval")
        except SyntaxError:
            return set()
    names = set()
    for n in ast.walk(ann):
        if isinstance(n, ast.Name):
            names.add(n.id)
        elif isinstance(n, ast.Attribute):
            names.add(n.attr)
    return names


def _root_name(expr: ast.AST) -> str | None:
    """`x` for `x`, `x[0]`, `x[0][1]`; None for anything else."""
    while isinstance(expr, ast.Subscript):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


class _Scan(ast.NodeVisitor):
    def __init__(self, filename: str, runtime_names: set[str], classes: dict[str, set[str]]):
        self.filename = filename
        self.runtime_names = runtime_names
        self.classes = classes  # class name -> private members (this file's and others')
        self.runtime_bound: set[str] = set()  # names bound to cipherray(.runtime) imports
        self.other_bound: set[str] = set()  # names bound to any other import
        self.local_classes: set[str] = set()
        self.params: list[dict[str, set[str]]] = [{}]  # enclosing functions' annotations
        self.found: list[str] = []

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.filename}:{node.lineno}: {what}")

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            bound = a.asname or a.name.split(".")[0]
            target = a.name if a.asname else a.name.split(".")[0]
            if _is_runtime_module(target, 0):
                self.runtime_bound.add(bound)
            else:
                self.other_bound.add(bound)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        from_runtime = _is_runtime_module(node.module, node.level)
        for a in node.names:
            bound = a.asname or a.name
            if from_runtime:
                self.runtime_bound.add(bound)
                if _private(a.name):
                    self.flag(node, f"imports {a.name} from {node.module}")
            else:
                self.other_bound.add(bound)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        scope = dict(self.params[-1])
        for a in every:
            if a is not None:
                scope[a.arg] = _annotation_names(a.annotation)
        self.params.append(scope)
        self.generic_visit(node)
        self.params.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def _receiver_has(self, recv: ast.AST, attr: str) -> bool:
        """Whether `recv` is visibly a non-runtime class (or module) with member `attr`."""
        if isinstance(recv, ast.Name):
            if recv.id in self.other_bound:
                return True  # a module or class imported from outside the runtime
            if recv.id in self.local_classes and attr in self.classes.get(recv.id, ()):
                return True
        root = _root_name(recv)
        if root is not None:
            for cls in self.params[-1].get(root, ()):
                if cls not in self.runtime_bound and attr in self.classes.get(cls, ()):
                    return True
        return False

    def visit_Attribute(self, node: ast.Attribute) -> None:
        recv = node.value
        if _private(node.attr) and not (isinstance(recv, ast.Name) and recv.id in ("self", "cls")):
            if isinstance(recv, ast.Name) and recv.id in self.runtime_bound | RUNTIME_NAMES:
                self.flag(node, f"{recv.id}.{node.attr}")
            elif node.attr in self.runtime_names and not self._receiver_has(recv, node.attr):
                self.flag(node, ast.unparse(node))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        fn = node.func
        name = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", "")
        if name in REF_CLASSES:
            self.flag(node, f"builds a {name} by hand")
        if name == "getattr" and len(node.args) >= 2:
            key = node.args[1]
            recv = node.args[0]
            if (
                isinstance(key, ast.Constant)
                and key.value in self.runtime_names
                and not (isinstance(recv, ast.Name) and recv.id in ("self", "cls"))
                and not self._receiver_has(recv, key.value)
            ):
                self.flag(node, f"getattr(..., {key.value!r})")
        self.generic_visit(node)


def violations(
    source: str,
    filename: str,
    runtime_names: set[str],
    other_classes: dict[str, set[str]],
) -> list[str]:
    """'file:line: what' for every use of the runtime's internals in `source`."""
    tree = ast.parse(source, filename)
    own = _class_members(tree)
    scan = _Scan(filename, runtime_names, {**other_classes, **own})
    scan.local_classes = set(own)
    # imports first (a lazy import inside a function binds its name for the whole file)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            scan.visit_Import(node)
        elif isinstance(node, ast.ImportFrom):
            scan.visit_ImportFrom(node)
    scan.found.clear()  # ImportFrom findings are made again by the full visit below
    scan.visit(tree)
    return scan.found


def test_the_runtime_private_names_are_found():
    names = runtime_private_names()
    # a few that earlier benchmarks and workloads used: the collector must see them
    for n in ("_step", "_shares", "_h", "_sk", "_check_member_value", "_messages", "_pp"):
        assert n in names, n


def test_nothing_outside_the_runtime_uses_its_internals():
    names, others = runtime_private_names(), non_runtime_class_members()
    found = []
    for path in _scanned_files():
        rel = str(path.relative_to(ROOT))
        found += violations(path.read_text(), rel, names, others)
    assert found == [], "runtime internals used outside cipherray/runtime/:\n" + "\n".join(found)


PLANTED = """
import cipherray as cr
from cipherray.runtime.runtime import _nothing  # BAD
from cipherray.runtime import shared
from cipherray.protocols.paillier.cipher_array import CipherArray


class Job:
    def __init__(self, rt):
        self._step = 0  # the job's own attribute
        self.rt = rt

    def _check(self, other: CipherArray, arrays: list[CipherArray]):
        return other._pk == arrays[0]._pk  # the Paillier class's own member

    def go(self, x, he, ref, mpc):
        self._step += 1
        rt = self.rt
        rt._step(rt.party("a"), len, (x,), step="s")  # BAD
        self.rt._messages("t", [])  # BAD
        rt._run_at(None, len, (), {}, step="old")  # BAD
        y = x._shares[0]  # BAD
        key = he._sk  # BAD
        h = ref._h  # BAD
        mpc._check_member_value(x, "s")  # BAD
        z = cr.PartyRef(rt, h, rt.party("a"), None)  # BAD
        w = shared._bshape((1,), (1,))  # BAD
        v = getattr(x, "_shares")  # BAD
        u = getattr(self, "_step", None)  # its own attribute
        s = cr._secret  # BAD
        c = CipherArray._wrap(None, None, 0, "int")  # the Paillier class's own _wrap
        return x.__class__, y, key, h, z, w, v, u, c, s, x._pk  # BAD


"""


def test_the_scan_flags_a_planted_example():
    names, others = runtime_private_names(), non_runtime_class_members()
    found = violations(PLANTED, "planted.py", names, others)
    lines = PLANTED.splitlines()
    flagged = sorted(int(f.split(":")[1]) for f in found)
    bad = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith("# BAD")]
    assert flagged == bad, "\n".join(found)
    # and the scan of a clean version of the same file finds nothing
    clean = "\n".join(line for line in lines if not line.rstrip().endswith("# BAD"))
    assert violations(clean, "clean.py", names, others) == []
