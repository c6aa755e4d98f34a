"""The typed wire format of cross-silo protocol messages. Nothing executable crosses.

A message is one value of a small set of kinds, sent as one or more frames:

    frame = u32 big-endian header length | header (msgpack map) | chunk of the payload

The header names the message and describes its payload completely:

    v       format version (1)
    job     job id; a receiver refuses messages of another job
    src     sending party (checked against its TLS certificate by the transport)
    dst     receiving party
    tag     the protocol step's message tag (``psi/round1/blinded``)
    sess    the sender's session (random per process) and
    seq     its sequence number towards `dst`: (src, sess, seq) identifies the message,
            so a message sent again after a dropped connection is delivered once
    kind    ``array`` (NumPy array), ``bytes``, ``cipher`` (Paillier ciphertexts in
            `CipherArray.to_bytes` form), ``meta`` (small msgpack data), ``tuple``
            (several of those, one after the other), ``fail`` (failure broadcast:
            msgpack {party, step, reason})
    dtype   array element type, from an allow-list (booleans, integers, floats,
            complex); never object, string, structured or datetime types
    shape   array shape (empty for the other kinds)
    nbytes  payload length (for arrays: the product of the shape times the item size)
    chunk   this frame's index, and
    chunks  the number of frames; chunks arrive in order, every one but the last
            non-empty, their lengths adding up to nbytes
    parts   for a tuple, each value's [kind, dtype, shape, nbytes] (checked as a
            single value is), their sizes adding up to nbytes; empty otherwise

Receiving, in order: (1) `parse_frame` checks the header's types and ranges and that the
frame's length matches; (2) `Assembler` checks every later frame against the first
(same message, next index) and copies its chunk into a buffer of exactly nbytes,
allocated once the size passed the receiver's limit (every check is made before the
copy; with a `copier.CopyThread` the chunks of a message of several frames are copied
on that thread and the message is complete once its copies are done; the buffer may be
one a `buffers.BufferPool` reuses); (3) `decode` turns the payload into the value and
checks it against what the receiving step expects (`Expect`: kind, dtype, shape,
maximum size, bytes length). Any failure raises `WireError` naming the peer and the
tag; the message is dropped and nothing else changes. The runtime's messages are decoded
with no `Expect` here (`unpack_value` rebuilds a structured value first); the receiving
step checks the value itself (`expect.check_value`) before it runs.

Arrays travel as their little-endian bytes (no copy for a C-contiguous little-endian
array) and are rebuilt with ``numpy.frombuffer``; ``meta`` is unpacked with strict
limits and no extension types. No pickle anywhere: a peer's bytes are only ever read as
numbers, raw bytes or plain msgpack data.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from cipherray.runtime.errors import WireError
from cipherray.runtime.silo import he_wire
from cipherray.runtime.silo.copier import CopyJob, CopyThread, copy_chunk

VERSION = 1
ARRAY, BYTES, CIPHER, META, FAIL = "array", "bytes", "cipher", "meta", "fail"
TUPLE = "tuple"
LEAVES = frozenset({ARRAY, BYTES, CIPHER, META})  # what a tuple's parts may be
KINDS = frozenset({*LEAVES, FAIL, TUPLE})
DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    }
)
MAX_HEADER = 4096  # bytes of msgpack header per frame
MAX_META = 1 << 16  # bytes of a meta or fail payload
MAX_NDIM = 32
MAX_PARTS = 64  # values in one tuple message
MAX_NAME = 256  # characters of job, party and tag names
DEFAULT_CHUNK = 1 << 20
COPY_TIMEOUT_S = 60.0  # to wait for room on, or the end of, a message's copies (memcpys)
_LEN = struct.Struct(">I")
_FIELDS = {
    "v": int,
    "job": str,
    "src": str,
    "dst": str,
    "tag": str,
    "sess": int,
    "seq": int,
    "kind": str,
    "dtype": str,
    "shape": list,
    "nbytes": int,
    "chunk": int,
    "chunks": int,
    "parts": list,
}


class CipherBytes(bytes):
    """Paillier ciphertexts in `CipherArray.to_bytes` form; the receiver parses them with
    ``CipherArray.from_bytes(b, public_key)``, which checks the key and every ciphertext."""


@dataclass(frozen=True)
class Header:
    job: str
    src: str
    dst: str
    tag: str
    sess: int
    seq: int
    kind: str
    dtype: str
    shape: tuple
    nbytes: int
    chunk: int = 0
    chunks: int = 1
    parts: tuple = ()  # a tuple message's values: (kind, dtype, shape, nbytes) each

    def pack(self) -> bytes:
        d = {"v": VERSION, **self.__dict__, "shape": list(self.shape)}
        d["parts"] = [[k, dt, list(sh), n] for k, dt, sh, n in self.parts]
        return msgpack.packb(d, use_bin_type=True)

    def same_message(self, other: Header) -> bool:
        return (self.job, self.src, self.dst, self.tag, self.sess, self.seq, self.kind,
                self.dtype, self.shape, self.nbytes, self.chunks, self.parts) == (
                other.job, other.src, other.dst, other.tag, other.sess, other.seq,
                other.kind, other.dtype, other.shape, other.nbytes, other.chunks,
                other.parts)  # fmt: skip


@dataclass(frozen=True)
class Expect:
    """What a receiving step expects: `kind`, and for arrays `dtype` and `shape` (None in
    a dimension: any length; a name, e.g. "n": any length, the same wherever that name
    appears in one expectation); `max_bytes` bounds the payload; `length` is the exact
    size of a bytes value; for a tuple, `parts` (one `Expect` or None per value). None:
    not checked. The receiver makes it from its own view of the protocol, never from the
    message (`expect.check_value` checks a runtime value against one)."""

    kind: str | None = None
    dtype: str | None = None
    shape: tuple | None = None
    max_bytes: int | None = None
    parts: tuple | None = None
    length: int | None = None

    @classmethod
    def tuple(cls, *parts: Expect | None, max_bytes: int | None = None) -> Expect:
        return cls(TUPLE, None, None, max_bytes, tuple(parts))

    @classmethod
    def array(cls, dtype: Any, shape: tuple | None = None, max_bytes: int | None = None):
        return cls(ARRAY, np.dtype(dtype).name, None if shape is None else tuple(shape), max_bytes)

    @classmethod
    def bytes(cls, length: int | None = None, max_bytes: int | None = None) -> Expect:
        return cls(BYTES, None, None, max_bytes, None, length)


@dataclass
class Message:
    """A complete message as received: its header and its payload bytes."""

    header: Header
    payload: np.ndarray  # uint8, exactly header.nbytes


# -- sending -----------------------------------------------------------------------------------
def describe(value: Any) -> tuple[str, str, tuple, list[memoryview], tuple]:
    """(kind, dtype, shape, payload pieces, parts) of a value that may cross: an array,
    bytes, `CipherBytes`, plain data, or a tuple of those (each sent as it is, no copy);
    TypeError otherwise."""
    if type(value) is tuple:
        if not 0 < len(value) <= MAX_PARTS:
            raise TypeError(f"a tuple message has 1 to {MAX_PARTS} values, not {len(value)}")
        leaves = [_leaf(v) for v in value]
        parts = tuple((k, d, sh, len(mv)) for k, d, sh, mv in leaves)
        return TUPLE, "", (), [mv for *_, mv in leaves], parts
    kind, dtype, shape, mv = _leaf(value)
    return kind, dtype, shape, [mv], ()


def _leaf(value: Any) -> tuple[str, str, tuple, memoryview]:
    if isinstance(value, np.ndarray):
        dt = value.dtype
        if dt.name not in DTYPES or dt.fields is not None:
            raise TypeError(f"arrays of dtype {dt} cannot be sent (allowed: {sorted(DTYPES)})")
        if dt.byteorder == ">":
            value = value.astype(dt.newbyteorder("<"))
        a = np.asarray(value, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
        return (
            ARRAY,
            dt.name,
            tuple(int(s) for s in a.shape),
            memoryview(a.reshape(-1).view(np.uint8)),
        )
    if isinstance(value, CipherBytes):
        return CIPHER, "", (), memoryview(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return BYTES, "", (), memoryview(value).cast("B")
    try:
        b = msgpack.packb(value, use_bin_type=True, strict_types=False)
    except (TypeError, ValueError, OverflowError) as e:
        raise TypeError(
            f"a {type(value).__name__} cannot be sent: send arrays, bytes, ciphertext bytes, "
            f"plain data (dict, list, str, int, float, bool, None) or a tuple of those ({e})"
        ) from None
    if len(b) > MAX_META:
        raise TypeError(f"metadata of {len(b)} bytes exceeds {MAX_META}: send an array or bytes")
    return META, "", (), memoryview(b)


def frames(
    value: Any,
    *,
    job: str,
    src: str,
    dst: str,
    tag: str,
    sess: int,
    seq: int,
    chunk_bytes: int = DEFAULT_CHUNK,
    kind: str | None = None,
) -> Iterator[bytes]:
    """The frames of one message, made lazily (a stream pulls them as the link allows)."""
    k, dtype, shape, pieces, parts = describe(value)
    kind = kind or k
    n = sum(len(p) for p in pieces)
    chunks = max(1, -(-n // chunk_bytes))
    spans = _spans(pieces, chunk_bytes)
    for i in range(chunks):
        h = Header(job, src, dst, tag, sess, seq, kind, dtype, shape, n, i, chunks, parts).pack()
        yield b"".join((_LEN.pack(len(h)), h, *next(spans, ())))


def _spans(pieces: list[memoryview], size: int) -> Iterator[list[memoryview]]:
    """The payload pieces cut into consecutive chunks of `size` bytes (views, no copy)."""
    out: list[memoryview] = []
    room = size
    for p in pieces:
        at = 0
        while at < len(p):
            take = min(room, len(p) - at)
            out.append(p[at : at + take])
            at += take
            room -= take
            if room == 0:
                yield out
                out, room = [], size
    if out:
        yield out


# -- receiving ---------------------------------------------------------------------------------
def parse_frame(frame: bytes, peer: str) -> tuple[Header, memoryview]:
    """Check one frame's header; returns (header, chunk). WireError naming `peer`."""
    mv = memoryview(frame)
    if len(mv) < _LEN.size:
        raise WireError(peer, "?", f"truncated frame ({len(mv)} bytes)")
    (hlen,) = _LEN.unpack_from(mv)
    if hlen > MAX_HEADER or hlen > len(mv) - _LEN.size:
        raise WireError(peer, "?", f"bad header length {hlen} in a frame of {len(mv)} bytes")
    try:
        d = msgpack.unpackb(
            mv[_LEN.size : _LEN.size + hlen],
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_no_ext,
        )
    except Exception as e:  # any malformed msgpack
        raise WireError(peer, "?", f"unreadable header ({type(e).__name__})") from None
    tag = d.get("tag") if isinstance(d, dict) and isinstance(d.get("tag"), str) else "?"
    tag = tag[:MAX_NAME]
    if not isinstance(d, dict) or set(d) != set(_FIELDS):
        raise WireError(peer, tag, "header fields are not the format's")
    for f, t in _FIELDS.items():
        if type(d[f]) is not t:
            raise WireError(peer, tag, f"header field '{f}' is not a {t.__name__}")
    if d["v"] != VERSION:
        raise WireError(peer, tag, f"wire format version {d['v']}, expected {VERSION}")
    for f in ("job", "src", "dst", "tag", "dtype"):
        if len(d[f]) > MAX_NAME:
            raise WireError(peer, tag, f"header field '{f}' is too long")
    shape = d["shape"]
    if len(shape) > MAX_NDIM or not all(type(s) is int and 0 <= s < 1 << 48 for s in shape):
        raise WireError(peer, tag, f"bad shape {shape!r}"[:200])
    for f in ("sess", "seq", "nbytes", "chunk", "chunks"):
        if not 0 <= d[f] < 1 << 63:
            raise WireError(peer, tag, f"header field '{f}' out of range")
    kind, nbytes = d["kind"], d["nbytes"]
    if kind not in KINDS:
        raise WireError(peer, tag, f"unknown message kind {kind!r}")
    parts = d["parts"]
    if kind == TUPLE:
        if d["dtype"] or shape:
            raise WireError(peer, tag, "a tuple message has no dtype or shape")
        if not 0 < len(parts) <= MAX_PARTS:
            raise WireError(peer, tag, f"a tuple message of {len(parts)} values")
        checked = []
        for part in parts:
            if not (
                type(part) is list
                and len(part) == 4
                and [type(x) for x in part] == [str, str, list, int]
                and part[0] in LEAVES
            ):
                raise WireError(peer, tag, "a tuple's value is not described as the format's")
            checked.append(_check_value(peer, tag, *part))
        if sum(p[3] for p in checked) != nbytes:
            raise WireError(peer, tag, "a tuple's values do not add up to its size")
        d["parts"] = tuple(checked)
    else:
        if parts:
            raise WireError(peer, tag, f"a {kind} message has no parts")
        _check_value(peer, tag, kind, d["dtype"], shape, nbytes)
        d["parts"] = ()
    if not (1 <= d["chunks"] and d["chunk"] < d["chunks"]):
        raise WireError(peer, tag, f"chunk {d['chunk']} of {d['chunks']}")
    d.pop("v")
    d["shape"] = tuple(shape)
    return Header(**d), mv[_LEN.size + hlen :]


def _check_value(peer: str, tag: str, kind: str, dtype: str, shape: list, nbytes: int) -> tuple:
    """One value's description, checked: (kind, dtype, shape, nbytes)."""
    if len(shape) > MAX_NDIM or not all(type(s) is int and 0 <= s < 1 << 48 for s in shape):
        raise WireError(peer, tag, f"bad shape {shape!r}"[:200])
    if not 0 <= nbytes < 1 << 63:
        raise WireError(peer, tag, "size out of range")
    if kind == ARRAY:
        if dtype not in DTYPES:
            raise WireError(peer, tag, f"dtype {dtype!r} is not allowed on the wire")
        size = 1
        for s in shape:
            size *= s
        if size * np.dtype(dtype).itemsize != nbytes:
            raise WireError(
                peer, tag, f"{nbytes} bytes do not make a {dtype} array of shape {tuple(shape)}"
            )
    elif dtype or shape:
        raise WireError(peer, tag, f"a {kind} message has no dtype or shape")
    if kind in (META, FAIL) and nbytes > MAX_META:
        raise WireError(peer, tag, f"{kind} payload of {nbytes} bytes exceeds {MAX_META}")
    return kind, dtype, tuple(shape), nbytes


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError("msgpack extension types are not part of the wire format")


class Assembler:
    """Collects the frames of one message into one buffer of exactly `nbytes`.

    Every frame is checked in `add`, in the caller's thread. With a `copier` (a
    `CopyThread`) the chunks of a message of several frames but the last are copied into
    the buffer on that thread, so the caller (the gRPC receive loop) reads the next frame
    meanwhile; the message is complete once its copies are done. A message of one frame
    is copied in the caller's thread. `alloc(n)` gives the message's buffer (writable
    uint8 of n bytes; default a new array)."""

    def __init__(
        self,
        first: Header,
        peer: str,
        copier: CopyThread | None = None,
        alloc: Callable[[int], np.ndarray] | None = None,
    ):
        self.header = first
        self.peer = peer
        # filled below: no zeroing pass; `alloc` (a `buffers.BufferPool`'s `take`) may
        # hand out a buffer of an earlier message that nothing refers to any more
        self.buf = alloc(first.nbytes) if alloc else np.empty(first.nbytes, dtype=np.uint8)
        self.filled = 0
        self.next = 0
        self.copier = copier if first.chunks > 1 else None
        self.copies = CopyJob()

    def add(self, h: Header, chunk: memoryview) -> Message | None:
        """Add one frame; returns the message once its last frame is in (and copied)."""
        first = self.header
        if not h.same_message(first) or h.chunk != self.next:
            raise WireError(
                self.peer, first.tag, f"frame {h.chunk} does not continue message {first.seq}"
            )
        n = len(chunk)
        last = h.chunk == h.chunks - 1
        if self.filled + n > first.nbytes or (n == 0 and not last):
            raise WireError(
                self.peer, first.tag, f"chunks exceed the {first.nbytes} bytes declared"
            )
        if last and self.filled + n != first.nbytes:
            raise WireError(
                self.peer, first.tag, f"truncated: {self.filled + n} of {first.nbytes} bytes"
            )
        dst = self.buf[self.filled : self.filled + n]
        try:
            if self.copier is None or last:
                copy_chunk(dst, chunk)
            else:
                self.copier.copy(self.copies, dst, chunk, COPY_TIMEOUT_S)
            self.filled += n
            self.next += 1
            if not last:
                return None
            if self.copier is not None:
                self.copier.wait(self.copies, COPY_TIMEOUT_S)
        except TimeoutError:
            raise WireError(self.peer, first.tag, "copying the chunks timed out") from None
        return Message(first, self.buf)

    def missing(self) -> WireError:
        return WireError(
            self.peer,
            self.header.tag,
            f"truncated: the stream ended after {self.next} of {self.header.chunks} frames",
        )


def decode(msg: Message, expect: Expect | None = None) -> Any:
    """The value a complete message carries, checked against `expect`; WireError naming
    the sender and the tag otherwise."""
    h = msg.header
    peer, tag = h.src, h.tag
    names: dict = {}  # named dimensions, the same across a tuple's values
    if expect is not None:
        _check_expect(peer, tag, expect, h.kind, h.dtype, h.shape, h.nbytes, names)
    if h.kind != TUPLE:
        return _value(peer, tag, h.kind, h.dtype, h.shape, msg.payload)
    if expect is not None and expect.parts is not None:
        if len(expect.parts) != len(h.parts):
            raise WireError(
                peer, tag, f"expected a tuple of {len(expect.parts)} values, got {len(h.parts)}"
            )
        for e, part in zip(expect.parts, h.parts):
            if e is not None:
                _check_expect(peer, tag, e, *part, names)
    out, at = [], 0
    for kind, dtype, shape, n in h.parts:
        out.append(_value(peer, tag, kind, dtype, shape, msg.payload[at : at + n]))
        at += n
    return tuple(out)


def _check_expect(peer, tag, expect: Expect, kind, dtype, shape, nbytes, names=None) -> None:
    if expect.kind is not None and kind != expect.kind:
        raise WireError(peer, tag, f"expected a {expect.kind} message, got {kind}")
    if expect.max_bytes is not None and nbytes > expect.max_bytes:
        raise WireError(peer, tag, f"{nbytes} bytes exceed the step's limit of {expect.max_bytes}")
    if expect.dtype is not None and dtype != np.dtype(expect.dtype).name:
        raise WireError(peer, tag, f"expected dtype {np.dtype(expect.dtype).name}, got {dtype}")
    if expect.shape is not None and not shape_ok(shape, expect.shape, names):
        raise WireError(peer, tag, f"expected shape {tuple(expect.shape)}, got {shape}")
    if expect.length is not None and kind in (BYTES, CIPHER) and nbytes != expect.length:
        raise WireError(peer, tag, f"expected {expect.length} bytes, got {nbytes}")


def _value(peer: str, tag: str, kind: str, dtype: str, shape: tuple, payload) -> Any:
    if kind == ARRAY:
        return np.frombuffer(payload, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    if kind == BYTES:
        return bytes(payload)
    if kind == CIPHER:
        return CipherBytes(payload)
    return unpack_meta(bytes(payload), peer, tag)


def unpack_meta(b: bytes, peer: str, tag: str) -> Any:
    """Plain msgpack data (maps with string keys, lists, str, bytes, numbers, bool, nil)."""
    try:
        v = msgpack.unpackb(
            b,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_no_ext,
            timestamp=0,
        )
    except Exception as e:
        raise WireError(peer, tag, f"unreadable metadata ({type(e).__name__})") from None
    if not _plain(v):
        raise WireError(peer, tag, "metadata holds values other than plain data")
    return v


def _plain(v: Any, depth: int = 0) -> bool:
    if depth > 32:
        return False
    if v is None or type(v) in (bool, int, float, str, bytes):
        return True
    if type(v) is list:
        return all(_plain(x, depth + 1) for x in v)
    if type(v) is dict:
        return all(type(k) is str and _plain(x, depth + 1) for k, x in v.items())
    return False


def shape_ok(got: tuple, want: tuple, names: dict | None = None) -> bool:
    """Whether shape `got` is `want`: an int is that length, None any, a name (str) any
    length that is the same wherever the name appears (`names` keeps what each is)."""
    if len(got) != len(want):
        return False
    names = {} if names is None else names
    for g, w in zip(got, want):
        if isinstance(w, str):
            if names.setdefault(w, g) != g:
                return False
        elif w is not None and g != w:
            return False
    return True


# -- runtime values ----------------------------------------------------------------------------
# A step's message value is often not one array: a seed with its shape (bytes, (n, d)), a
# tuple of opened shares, hashed identifiers as fixed-size byte strings (dtype V32). The
# runtime sends such a value as ``(skeleton, blob)``: `skeleton` (msgpack) says how to
# rebuild it, `blob` (bytes) holds the arrays' bytes one after the other. A lone array of
# an allowed dtype and lone bytes are sent as they are. Paillier public keys and
# ciphertext arrays are nodes of the skeleton too (`he_wire`: the modulus, and the
# `CipherArray.to_bytes` form in the blob). Nothing else is accepted.
STRUCT = "cipherray/struct/1"
MAX_LEAVES = 4096


def pack_value(value: Any) -> Any:
    """A runtime value in a form `frames` can send: arrays of an allowed dtype, bytes and
    `CipherBytes` as they are; anything else as ``(skeleton, blob)``. TypeError for a
    value with no typed encoding (objects, strings arrays, ...)."""
    if isinstance(value, np.ndarray) and value.dtype.name in DTYPES and value.dtype.fields is None:
        return value
    if type(value) in (bytes, CipherBytes):
        return value
    blobs: list[memoryview] = []
    at = [0]

    def leaf(a: np.ndarray, code: str, extra: Any) -> list:
        a = np.asarray(a, order="C")
        mv = memoryview(a.reshape(-1).view(np.uint8)) if a.size else memoryview(b"")
        blobs.append(mv)
        if len(blobs) > MAX_LEAVES:
            raise TypeError(f"a message holds at most {MAX_LEAVES} arrays")
        out = [code, extra, [int(s) for s in a.shape], at[0], len(mv)]
        at[0] += len(mv)
        return out

    def enc(v: Any, depth: int) -> Any:
        if depth > 16:
            raise TypeError("a message value is nested too deeply")
        if isinstance(v, np.ndarray):
            dt = v.dtype
            if dt.fields is None and dt.name in DTYPES:
                return leaf(v.astype(dt.newbyteorder("<"), copy=False), "a", dt.name)
            if dt.kind == "V" and dt.fields is None:  # fixed-size byte strings (points)
                return leaf(v.view(np.uint8).reshape(*v.shape, dt.itemsize), "v", dt.itemsize)
            raise TypeError(f"arrays of dtype {dt} cannot be sent")
        if he_wire.is_he(v):  # Paillier keys and ciphertexts: see he_wire
            return he_wire.encode(v, lambda b: leaf(np.frombuffer(b, np.uint8), "b", 0))
        if isinstance(v, np.generic):
            return ["g", v.dtype.name if v.dtype.name in DTYPES else _no_type(v), v.item()]
        if type(v) is CipherBytes:
            return ["c", v.hex()] if len(v) < 1024 else leaf(np.frombuffer(v, np.uint8), "C", 0)
        if isinstance(v, bytes | bytearray):
            return leaf(np.frombuffer(bytes(v), np.uint8), "b", 0)
        if v is None or type(v) in (bool, float, str):
            return ["s", v]
        if type(v) is int:
            return ["s", v] if -(1 << 63) <= v < (1 << 64) else ["i", hex(v)]
        if type(v) in (tuple, list):
            return ["t" if type(v) is tuple else "l", [enc(x, depth + 1) for x in v]]
        if type(v) is dict:
            return ["d", [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]]
        return _no_type(v)

    skeleton = msgpack.packb(
        [STRUCT, enc(value, 0)], use_bin_type=True
    )  # fmt: skip
    if len(skeleton) > MAX_META:
        raise TypeError(f"the structure of a message exceeds {MAX_META} bytes")
    blob = b"".join(blobs)
    return (skeleton, blob)


def _no_type(v: Any) -> Any:
    raise TypeError(
        f"a {type(v).__name__} has no typed wire encoding: steps that send to another "
        "organisation exchange arrays, bytes, ciphertext bytes, numbers, strings and "
        "tuples/lists/dicts of those"
    )


def unpack_value(value: Any, peer: str, tag: str) -> Any:
    """The runtime value `pack_value` encoded (checked: WireError naming the peer and the
    tag for anything malformed)."""
    if not (
        type(value) is tuple and len(value) == 2 and type(value[0]) is bytes
        and type(value[1]) is bytes
    ):  # fmt: skip
        if isinstance(value, np.ndarray) and not value.flags.writeable:
            return np.array(value)  # a writable copy, owned by the receiving step
        return value  # (an array over the message's own buffer is already that)
    skeleton, blob = value
    head = unpack_meta(skeleton, peer, tag)
    if type(head) is not list or len(head) != 2 or head[0] != STRUCT:
        # an ordinary pair of bytes values, not a structure
        return value
    view = memoryview(blob)

    def bad(why: str) -> WireError:
        return WireError(peer, tag, f"malformed structured message: {why}")

    def arr(
        extra: Any, shape: Any, off: Any, n: Any, dtype: np.dtype, copy: bool = True
    ) -> np.ndarray:
        if not (
            type(shape) is list and len(shape) <= MAX_NDIM
            and all(type(s) is int and s >= 0 for s in shape)
            and type(off) is int and type(n) is int and 0 <= off and off + n <= len(blob)
        ):  # fmt: skip
            raise bad("array bounds")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count * dtype.itemsize != n:
            raise bad("array size")
        a = np.frombuffer(view[off : off + n], dtype=dtype).reshape(shape)
        return a.copy() if copy else a

    def raw_bytes(x: Any) -> bytes:
        """The bytes of a byte leaf (a Paillier value's ciphertexts)."""
        if type(x) is not list or len(x) != 5 or x[0] != "b":
            raise bad("byte leaf")
        return bytes(arr(x[1], x[2], x[3], x[4], np.dtype(np.uint8), copy=False))  # one copy

    def dec(x: Any, depth: int) -> Any:
        if depth > 17 or type(x) is not list or not x or type(x[0]) is not str:
            raise bad("node")
        code = x[0]
        if code == "s" and len(x) == 2:
            return x[1]
        if code == "i" and len(x) == 2 and type(x[1]) is str and len(x[1]) < 4096:
            try:
                return int(x[1], 16)
            except ValueError:
                raise bad("integer") from None
        if code == "g" and len(x) == 3 and x[1] in DTYPES:
            try:
                return np.dtype(x[1]).type(x[2])
            except (TypeError, ValueError, OverflowError):
                raise bad("scalar") from None
        if code == "c" and len(x) == 2 and type(x[1]) is str:
            try:
                return CipherBytes(bytes.fromhex(x[1]))
            except ValueError:
                raise bad("ciphertext") from None
        if code in ("t", "l") and len(x) == 2 and type(x[1]) is list:
            items = [dec(v, depth + 1) for v in x[1]]
            return tuple(items) if code == "t" else items
        if code == "d" and len(x) == 2 and type(x[1]) is list:
            out = {}
            for kv in x[1]:
                if type(kv) is not list or len(kv) != 2:
                    raise bad("dict item")
                k = dec(kv[0], depth + 1)
                if not isinstance(k, int | float | str | bool | bytes | tuple | type(None)):
                    raise bad("dict key")
                out[k] = dec(kv[1], depth + 1)
            return out
        if code in ("K", "P", "Q"):
            return he_wire.decode(x, raw_bytes, peer, tag)
        if code in ("a", "v", "b", "C") and len(x) == 5:
            _, extra, shape, off, n = x
            if code == "a":
                if extra not in DTYPES:
                    raise bad(f"dtype {extra!r}")
                return arr(extra, shape, off, n, np.dtype(extra).newbyteorder("<"))
            if code == "v":
                if type(extra) is not int or not 0 < extra <= 4096 or not shape:
                    raise bad("byte-string width")
                if shape[-1] != extra:
                    raise bad("byte-string shape")
                a = arr(extra, shape, off, n, np.dtype(np.uint8))
                return np.ascontiguousarray(a).view(f"V{extra}").reshape(shape[:-1])
            raw = bytes(arr(extra, shape, off, n, np.dtype(np.uint8)))
            return raw if code == "b" else CipherBytes(raw)
        raise bad(f"code {code!r}")

    return dec(head[1], 0)
