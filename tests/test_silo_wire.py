"""The cross-silo wire format: typed values round-trip; anything else is a named error."""

from __future__ import annotations

import ast
from pathlib import Path

import msgpack
import numpy as np
import pytest

from cipherray.runtime.errors import PartyError, WireError
from cipherray.runtime.silo import wire
from cipherray.runtime.silo.wire import CipherBytes, Expect

SILO = Path(__file__).resolve().parents[1] / "cipherray" / "runtime" / "silo"
HDR = dict(job="j", src="bank", dst="insurer", tag="t/1", sess=7, seq=3)


def roundtrip(value, chunk_bytes=wire.DEFAULT_CHUNK, expect=None):
    frames = list(wire.frames(value, chunk_bytes=chunk_bytes, **HDR))
    asm, msg = None, None
    for f in frames:
        h, chunk = wire.parse_frame(f, "bank")
        asm = asm or wire.Assembler(h, "bank")
        msg = asm.add(h, chunk)
    assert msg is not None
    return len(frames), wire.decode(msg, expect)


@pytest.mark.parametrize("dtype", sorted(wire.DTYPES))
def test_arrays_of_every_allowed_dtype_round_trip(dtype):
    a = (np.arange(60) % 7).astype(dtype).reshape(3, 4, 5)
    n, b = roundtrip(a, chunk_bytes=64)
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
    assert n == max(1, -(-a.nbytes // 64))


def test_big_endian_non_contiguous_and_empty_arrays():
    a = np.arange(20, dtype=">i8").reshape(4, 5)[:, ::2]
    _, b = roundtrip(a)
    assert np.array_equal(a, b) and b.dtype == np.dtype("<i8")
    n, e = roundtrip(np.zeros((0, 3)))
    assert n == 1 and e.shape == (0, 3)


def test_bytes_ciphertexts_and_metadata_round_trip():
    assert roundtrip(b"\x00\x01" * 1000, chunk_bytes=100)[1] == b"\x00\x01" * 1000
    _, c = roundtrip(CipherBytes(b"ciphertexts"))
    assert type(c) is CipherBytes and c == b"ciphertexts"
    meta = {"round": 3, "sizes": [1, 2.5, None, True], "name": "psi", "raw": b"\x01"}
    assert roundtrip(meta)[1] == meta


@pytest.mark.parametrize(
    "value", [np.array([object()]), np.array(["a"]), np.zeros(2, "datetime64[s]"), {1, 2}, 1j]
)
def test_values_outside_the_format_are_not_sent(value):
    with pytest.raises(TypeError, match="cannot be sent"):
        list(wire.frames(value, **HDR))


def test_expect_checks_kind_dtype_shape_and_size():
    a = np.zeros((4, 3))
    assert roundtrip(a, expect=Expect.array("float64", (None, 3)))[1].shape == (4, 3)
    for exp, what in [
        (Expect.array("int64"), "dtype"),
        (Expect.array("float64", (4, 2)), "shape"),
        (Expect.array("float64", (4,)), "shape"),
        (Expect("bytes"), "bytes message"),
        (Expect(max_bytes=95), "limit"),
    ]:
        with pytest.raises(WireError, match=what) as e:
            roundtrip(a, expect=exp)
        assert isinstance(e.value, PartyError) and e.value.party == "bank"
        assert e.value.step == "t/1"


def _frame(header: dict, payload: bytes = b"") -> bytes:
    h = msgpack.packb(header, use_bin_type=True)
    return len(h).to_bytes(4, "big") + h + payload


def _good_header(**kw) -> dict:
    d = {"v": 1, **HDR, "kind": "array", "dtype": "int64", "shape": [2], "nbytes": 16,
         "chunk": 0, "chunks": 1, "parts": []}  # fmt: skip
    d.update(kw)
    return d


def _tuple_header(parts) -> dict:
    return _good_header(kind="tuple", dtype="", shape=[], parts=parts)


@pytest.mark.parametrize(
    "frame, what",
    [
        (b"\x00\x00", "truncated frame"),
        (b"\x00\x00\xff\xff" + b"x" * 10, "header length"),
        (b"\x00\x00\x00\x03abc", "unreadable header"),
        (_frame({"v": 1}), "fields"),
        (_frame(_good_header(seq="3")), "'seq' is not a int"),
        (_frame(_good_header(v=2)), "version"),
        (_frame(_good_header(kind="pickle")), "unknown message kind"),
        (_frame(_good_header(dtype="object")), "not allowed"),
        (_frame(_good_header(dtype="O")), "not allowed"),
        (_frame(_good_header(nbytes=15)), "do not make"),
        (_frame(_good_header(shape=[-1])), "bad shape"),
        (_frame(_good_header(shape=[1] * 40, nbytes=8)), "bad shape"),
        (_frame(_good_header(kind="meta", dtype="", shape=[], nbytes=1 << 20)), "exceeds"),
        (_frame(_good_header(kind="bytes")), "no dtype"),
        (_frame(_good_header(chunk=1)), "chunk 1 of 1"),
        (_frame(_good_header(seq=-1)), "out of range"),
        (len(b"\xd4\x01\x00").to_bytes(4, "big") + b"\xd4\x01\x00", "unreadable header"),
        (_frame(_good_header(parts=[["bytes", "", [], 16]])), "has no parts"),
        (_frame(_tuple_header([["tuple", "", [], 16]])), "not described"),
        (_frame(_tuple_header([["array", "object", [2], 16]])), "not allowed"),
        (_frame(_tuple_header([["array", "int64", [3], 16]])), "do not make"),
        (_frame(_tuple_header([["bytes", "", [], 8], ["bytes", "", [], 4]])), "add up"),
        (_frame(_tuple_header([["bytes", "", [], 8]] * 65)), "tuple message of 65"),
        (_frame(_tuple_header([["bytes", "", [], 16, 0]])), "not described"),
        (_frame(_tuple_header([])), "tuple message of 0"),
    ],
)
def test_malformed_frames_are_named_errors(frame, what):
    with pytest.raises(WireError, match=what) as e:
        wire.parse_frame(frame, "bank")
    assert e.value.party == "bank"


def test_truncated_and_overlong_payloads_are_refused():
    frames = list(wire.frames(np.arange(100), chunk_bytes=200, **HDR))
    h0, c0 = wire.parse_frame(frames[0], "bank")
    asm = wire.Assembler(h0, "bank")
    assert asm.add(h0, c0) is None
    h2, c2 = wire.parse_frame(frames[2], "bank")
    with pytest.raises(WireError, match="does not continue"):
        asm.add(h2, c2)  # frame 1 skipped
    assert "truncated" in str(asm.missing())
    h, c = wire.parse_frame(frames[-1], "bank")
    last = wire.Assembler(h0, "bank")
    last.add(h0, c0)
    with pytest.raises(WireError):
        last.add(h, c)  # frame 4 after frame 0
    one = wire.parse_frame(_frame(_good_header(), b"x" * 24), "bank")
    with pytest.raises(WireError, match="exceed"):
        wire.Assembler(one[0], "bank").add(*one)
    short = wire.parse_frame(_frame(_good_header(), b"x" * 8), "bank")
    with pytest.raises(WireError, match="truncated"):
        wire.Assembler(short[0], "bank").add(*short)


def test_metadata_with_extension_types_or_non_string_keys_is_refused():
    for payload in (msgpack.packb({1: 2}), b"\xd4\x05\x00", msgpack.packb([[[]]] * 3)[:-1]):
        with pytest.raises(WireError, match="metadata"):
            wire.unpack_meta(payload, "bank", "t")


def test_random_bytes_never_escape_as_anything_but_a_wire_error():
    rng = np.random.default_rng(5)
    good = next(wire.frames(np.arange(8), **HDR))
    for _ in range(2000):
        f = bytearray(good)
        for pos in rng.integers(0, len(f), size=rng.integers(1, 4)):
            f[pos] = int(rng.integers(0, 256))
        f = bytes(f[: rng.integers(0, len(f) + 1)]) if rng.random() < 0.3 else bytes(f)
        try:
            h, chunk = wire.parse_frame(f, "bank")
            msg = wire.Assembler(h, "bank").add(h, chunk)
            if msg is not None:
                wire.decode(msg)
        except WireError:
            pass


def test_no_pickle_in_the_silo_package():
    banned = {"pickle", "cloudpickle", "dill", "marshal", "shelve"}
    for path in SILO.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & banned, path
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in banned, path


def test_tuples_of_values_round_trip_in_chunks_that_span_them():
    value = (
        np.arange(10, dtype=np.int64),
        b"abc",
        {"scale": 16},
        CipherBytes(b"\x07" * 50),
        np.ones((2, 3), dtype=np.float32),
    )
    n, got = roundtrip(value, chunk_bytes=7)
    assert n == -(-sum(len(wire.describe(v)[3][0]) for v in value) // 7)
    assert type(got) is tuple and len(got) == 5
    assert np.array_equal(got[0], value[0]) and got[1:4] == value[1:4]
    assert type(got[3]) is CipherBytes and got[4].dtype == np.float32 and got[4].shape == (2, 3)
    exp = Expect.tuple(Expect.array(np.int64, (10,)), None, Expect("meta"), None, None)
    assert roundtrip(value, expect=exp)[1][2] == {"scale": 16}
    for bad, what in [
        (Expect.tuple(Expect.array(np.int64)), "tuple of 1 values, got 5"),
        (Expect.tuple(Expect.array(np.int32), None, None, None, None), "dtype"),
        (Expect.tuple(None, Expect("meta"), None, None, None), "meta message, got bytes"),
        (Expect.array(np.int64), "array message, got tuple"),
    ]:
        with pytest.raises(WireError, match=what):
            roundtrip(value, expect=bad)
    with pytest.raises(TypeError, match="1 to 64"):
        list(wire.frames(tuple(range(65)), **HDR))
    with pytest.raises(TypeError, match="cannot be sent"):
        list(wire.frames((np.ones(2), object()), **HDR))


# -- runtime values (wire.pack_value / unpack_value) -------------------------------------------
def value_roundtrip(value):
    _, got = roundtrip(wire.pack_value(value), chunk_bytes=64)
    return wire.unpack_value(got, "bank", "t/1")


@pytest.mark.parametrize(
    "value",
    [
        np.arange(6, dtype=np.uint64).reshape(2, 3),
        np.array(5, dtype=np.uint64),  # 0-d arrays keep their shape
        b"seed",
        (b"seed", (3, 4)),  # a share seed with its public shape
        (np.ones(3), np.zeros((2, 0), np.uint64), [1, None, "x", 2.5, True]),
        np.frombuffer(bytes(range(96)), "V32"),  # hashed identifiers
        {"rows": 3, "name": "a", 7: np.int64(-2)},
        2**200 + 1,  # a Paillier-sized integer
        CipherBytes(b"\x01" * 2000),
    ],
)
def test_runtime_values_round_trip_without_pickle(value):
    got = value_roundtrip(value)
    if isinstance(value, np.ndarray):
        assert got.dtype == value.dtype and got.shape == value.shape
        assert got.tobytes() == value.tobytes() and got.flags.writeable
    else:
        assert type(got) is type(value)
        assert repr(got) == repr(value)


@pytest.mark.parametrize("value", [object(), np.array(["a"], dtype=object), {1.5j: 1}, [len]])
def test_values_without_a_typed_encoding_are_refused_at_the_sender(value):
    with pytest.raises(TypeError):
        wire.pack_value(value)


@pytest.mark.parametrize(
    "skeleton",
    [
        ["a", "object", [1], 0, 8],  # a dtype off the allow-list
        ["a", "uint64", [2], 0, 8],  # the size does not match the shape
        ["a", "uint64", [1], 8, 8],  # beyond the blob
        ["v", 32, [2, 16], 0, 32],  # byte strings of the wrong width
        ["x", 1],  # an unknown node
        ["t", [["s", 1]] * 2 + [7]],  # a node that is not a list
    ],
)
def test_a_malformed_structure_is_a_wire_error_naming_the_peer(skeleton):
    packed = (msgpack.packb([wire.STRUCT, skeleton]), bytes(8))
    with pytest.raises(WireError) as e:
        wire.unpack_value(packed, "bank", "t/1")
    assert e.value.party == "bank"
