"""Paillier values on the cross-silo wire: public keys and ciphertext arrays round-trip
through `wire.pack_value` / `unpack_value` (no pickle); a key of a wrong size, a
ciphertext out of range, another key's ciphertexts and truncated bytes are WireErrors."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from cipherray.protocols.paillier import CipherArray, PackedCipherArray, keygen, pack, unpack
from cipherray.runtime.errors import WireError
from cipherray.runtime.silo import he_wire, wire


@pytest.fixture(scope="module")
def keys():
    return keygen(bits=512, insecure=True)


def over_the_wire(value):
    """pack_value, the frames of one message, and back (as the transport does)."""
    packed = wire.pack_value(value)
    frames = list(wire.frames(packed, job="j", src="bank", dst="insurer", tag="t", sess=1, seq=0))
    asm = msg = None
    for f in frames:
        h, chunk = wire.parse_frame(f, "bank")
        asm = asm or wire.Assembler(h, "bank")
        msg = asm.add(h, chunk)
    return wire.unpack_value(wire.decode(msg), "bank", "t")


def test_public_key_round_trips_as_its_modulus(keys):
    pk, _ = keys
    got = over_the_wire(pk)
    assert type(got).__name__ == "PublicKey" and got == pk and got is not pk
    assert over_the_wire(pk) is got  # the same n: the same key object (its tables kept)


def test_ciphertext_arrays_round_trip_and_decrypt(keys):
    pk, sk = keys
    x = np.array([[1.5, -2.25, 0.0], [7.0, 3.125, -1e3]])
    c = pk.encrypt(x)
    got = over_the_wire(c)
    assert isinstance(got, CipherArray) and got.shape == (2, 3)
    assert got.exponent == c.exponent and got.kind == c.kind
    np.testing.assert_allclose(sk.decrypt(got), x)
    np.testing.assert_array_equal(sk.decrypt(got + c), 2 * x)  # the same key on both sides


def test_paillier_values_inside_structures(keys):
    pk, sk = keys
    c = pk.encrypt(np.arange(4))
    got = over_the_wire({"pk": pk, "parts": (c[:2], c[2:]), "n": 4, "ids": np.arange(3)})
    assert got["pk"] == pk and got["n"] == 4
    assert [sk.decrypt(p).tolist() for p in got["parts"]] == [[0, 1], [2, 3]]
    np.testing.assert_array_equal(got["ids"], np.arange(3))


def test_packed_ciphertexts_round_trip(keys):
    pk, sk = keys
    v = np.linspace(-1, 1, 11)
    p = pack(pk, v, bound=1.0, max_addends=4)
    got = over_the_wire(p)
    assert isinstance(got, PackedCipherArray) and got.slots == p.slots
    np.testing.assert_array_equal(unpack(sk, got + p), unpack(sk, p + p))
    np.testing.assert_allclose(unpack(sk, got), v, atol=2**-15)


def skeleton_of(value):
    skeleton, blob = wire.pack_value(value)
    return msgpack.unpackb(skeleton, raw=False), blob


def rebuild(head, blob):
    return (msgpack.packb(head, use_bin_type=True), blob)


def test_a_modulus_of_a_size_not_allowed_is_refused():
    for n in (2**511 + 1, 3 * 5 * 7, (2**1023 + 1) * 2):  # 512 bits but small factor; tiny; even
        with pytest.raises(WireError, match="modulus"):
            wire.unpack_value(rebuild(["cipherray/struct/1", ["K", format(n, "x")]], b""), "p", "t")
    n = keygen(bits=640, insecure=True)[0].n  # a real key, of a size not in the allowed set
    with pytest.raises(WireError, match="640 bits"):
        wire.unpack_value(
            rebuild(["cipherray/struct/1", ["K", format(int(n), "x")]], b""), "p", "t"
        )
    with pytest.raises(WireError, match="hex"):
        wire.unpack_value(rebuild(["cipherray/struct/1", ["K", "zz"]], b""), "p", "t")
    assert 640 not in he_wire.ALLOWED_BITS


def test_a_ciphertext_out_of_range_is_refused(keys):
    pk, _ = keys
    head, blob = skeleton_of(pk.encrypt(np.arange(3)))
    width = (int(pk.nsquare).bit_length() + 7) // 8
    body = bytearray(blob)
    nsq = int(pk.nsquare).to_bytes(width, "big")  # n^2 itself: just out of range
    body[len(body) - width :] = nsq
    with pytest.raises(WireError, match="out of range"):
        wire.unpack_value(rebuild(head, bytes(body)), "bank", "t")
    body[len(body) - width :] = bytes(width)  # zero
    with pytest.raises(WireError, match="out of range"):
        wire.unpack_value(rebuild(head, bytes(body)), "bank", "t")


def test_truncated_or_mismatched_ciphertexts_are_refused(keys):
    pk, _ = keys
    c = pk.encrypt(np.arange(3))
    head, blob = skeleton_of(c)
    with pytest.raises(WireError):  # the blob is shorter than the leaf says
        wire.unpack_value(rebuild(head, blob[:-5]), "bank", "t")
    leaf = head[1][2]  # ["b", 0, [len], off, len]: shorten the declared ciphertext bytes
    leaf[2], leaf[4] = [leaf[4] - 5], leaf[4] - 5
    with pytest.raises(WireError, match="length does not match"):
        wire.unpack_value(rebuild(head, blob[:-5]), "bank", "t")
    other = keygen(bits=512, insecure=True)[0]  # ciphertexts of another key
    head, blob = skeleton_of(c)
    head[1][1] = ["K", format(int(other.n), "x")]
    with pytest.raises(WireError, match="different public key"):
        wire.unpack_value(rebuild(head, blob), "bank", "t")
    head, blob = skeleton_of(c)
    head[1] = ["P", ["K", format(int(pk.n), "x")]]  # a node of the wrong arity
    with pytest.raises(WireError, match="malformed"):
        wire.unpack_value(rebuild(head, blob), "bank", "t")


def test_a_bad_packed_layout_is_refused(keys):
    pk, _ = keys
    head, blob = skeleton_of(pack(pk, np.zeros(5), bound=1.0, max_addends=2))
    head[1][2][1] = 500  # count no longer matches the shape and the ciphertexts
    with pytest.raises(WireError, match="layout"):
        wire.unpack_value(rebuild(head, blob), "bank", "t")
