"""PSI protocol layer vs plaintext set operations (no Ray)."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from cipherray.protocols.psi import (
    DOMAIN,
    BlindingKey,
    KeyTypeMismatchError,
    LowOrderPointError,
    blind,
    blind_chunked,
    cardinality,
    check_key_types,
    describe_key_types,
    ecdh,
    hash_stream,
    hash_to_points,
    intersection_sum,
    iter_csv_ids,
    iter_parquet_ids,
    key_type,
    match_points,
    multiparty,
    new_salt,
    prepare_ids,
    run_ecdh_psi_local,
    run_intersection_sum_local,
    run_multiparty_psi_local,
    run_psi_cardinality_local,
)
from cipherray.protocols.psi.curve import POINT_DTYPE, points_from_bytes, random_permutation


def _ids(lo: int, hi: int) -> list[bytes]:
    return [b"id-%06d" % i for i in range(lo, hi)]


def _values(ids: list[bytes], rows: np.ndarray) -> list[bytes]:
    return [ids[i] for i in rows]


# -- curve ------------------------------------------------------------------------------


def test_blinding_commutes():
    salt = new_salt()
    pts = hash_to_points(_ids(0, 200), salt)
    k1, k2 = BlindingKey.generate(), BlindingKey.generate()
    a = blind(blind(pts, k1), k2)
    b = blind(blind(pts, k2), k1)
    assert a.dtype == POINT_DTYPE and len(a) == 200
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
    # a single blinding differs from the point and from the other key's blinding
    assert not np.array_equal(blind(pts, k1).view(np.uint8), pts.view(np.uint8))
    assert not np.array_equal(blind(pts, k1).view(np.uint8), blind(pts, k2).view(np.uint8))


def test_salt_and_domain_separation():
    ids = _ids(0, 50)
    s1, s2 = new_salt(), new_salt()
    h1, h1b, h2 = hash_to_points(ids, s1), hash_to_points(ids, s1), hash_to_points(ids, s2)
    assert np.array_equal(h1.view(np.uint8), h1b.view(np.uint8))  # deterministic
    assert not np.any(h1.view("S32") == h2.view("S32"))  # different salt: all differ
    assert DOMAIN == b"cipherray/psi/v1"
    import hashlib

    plain = hashlib.blake2b(ids[0], digest_size=32, key=s1).digest()  # no domain tag
    assert h1[0].tobytes()[:31] != plain[:31]
    assert len(set(h1.view("S32").tolist())) == 50  # distinct ids -> distinct points


def test_chunked_blinding_matches_and_key_pickles():
    pts = hash_to_points(_ids(0, 300), new_salt())
    key = BlindingKey.generate()
    key2 = pickle.loads(pickle.dumps(key))
    assert "secret" in repr(key)
    with ThreadPoolExecutor(2) as ex:
        chunked = blind_chunked(pts, key2, mapper=ex.map, chunk_size=64)
    assert np.array_equal(chunked.view(np.uint8), blind(pts, key).view(np.uint8))


def test_low_order_point_rejected():
    key = BlindingKey.generate()
    bad = points_from_bytes([bytes(32), (1).to_bytes(32, "little")])
    with pytest.raises(LowOrderPointError):
        blind(bad, key)


def test_random_permutation_is_permutation():
    p = random_permutation(1000)
    assert np.array_equal(np.sort(p), np.arange(1000))
    assert not np.array_equal(p, np.arange(1000))


def test_match_points_common_order_and_exact():
    pts = hash_to_points(_ids(0, 100), new_salt())
    left, right = pts[:60], pts[30:][::-1]
    i, j = match_points(left, right)
    assert len(i) == 30
    assert np.array_equal(left[i].view(np.uint8), right[j].view(np.uint8))
    keys = left[i].view("S32")
    assert np.all(keys[:-1] < keys[1:])  # ascending in the value
    # same 8-byte prefix, different value: not a match (exact check)
    raw = bytearray(left[0].tobytes())
    raw[31] ^= 1
    fake = points_from_bytes(bytes(raw))
    i2, _ = match_points(left[:1], fake)
    assert len(i2) == 0


# -- two-party ECDH-PSI -------------------------------------------------------------------


def test_ecdh_psi_both_learn_rows_aligned():
    a, b = _ids(0, 700), _ids(400, 1000)
    res = run_ecdh_psi_local(a, b)
    assert res.size == 300
    va, vb = _values(a, res.rows_a), _values(b, res.rows_b)
    assert va == vb  # row-aligned
    assert set(va) == set(a) & set(b)
    # bytes: 32 per item each way in step 1, 32 per A item back, 8 per match
    assert res.transcript.bytes["A->B"] == 32 * 700 + 8 * 300
    assert res.transcript.bytes["B->A"] == 32 * 600 + 32 * 700


@pytest.mark.parametrize("receiver", ["A", "B"])
def test_ecdh_psi_receiver_only(receiver):
    a, b = _ids(0, 300), _ids(250, 400)
    res = run_ecdh_psi_local(a, b, receiver=receiver)
    expect = set(a) & set(b)
    if receiver == "A":
        assert res.rows_b is None and set(_values(a, res.rows_a)) == expect
        assert "B->A" in res.transcript.bytes and res.transcript.messages["A->B"] == 1
    else:
        assert res.rows_a is None and set(_values(b, res.rows_b)) == expect
        assert res.transcript.messages["B->A"] == 1
    assert res.size == 50


def test_ecdh_psi_step_functions_compose():
    """The per-party steps, composed by hand as the runtime would."""
    a, b = np.array(_ids(0, 200), dtype=object), np.array(_ids(150, 260), dtype=object)
    salt = new_salt()
    ka, kb = BlindingKey.generate(), BlindingKey.generate()
    m_a, perm_a = ecdh.step1_blind_own(a, salt, ka)  # A -> B
    m_b, perm_b = ecdh.step1_blind_own(b, salt, kb)  # B -> A
    d_a = ecdh.step2_double_blind(m_a, kb)  # at B, back to A
    d_b = ecdh.step2_double_blind(m_b, ka)  # at A
    pos_a, pos_b = ecdh.step3_match(d_a, d_b)
    rows_a = ecdh.step_rows(pos_a, perm_a, np.arange(len(a)))
    rows_b = ecdh.step_rows(pos_b, perm_b, np.arange(len(b)))  # step 4 at B
    assert list(a[rows_a]) == list(b[rows_b])
    assert set(a[rows_a]) == set(a) & set(b)
    # step 1 hides row order: the message is not in input order
    plain_order = blind(hash_to_points(a, salt), ka)
    assert not np.array_equal(m_a.view(np.uint8), plain_order.view(np.uint8))
    with pytest.raises(ValueError):
        ecdh.step_rows(np.array([10_000]), perm_a, np.arange(len(a)))


def test_ecdh_psi_empty_intersection_and_bad_receiver():
    res = run_ecdh_psi_local(_ids(0, 20), _ids(20, 40))
    assert res.size == 0 and len(res.rows_a) == 0 and len(res.rows_b) == 0
    with pytest.raises(ValueError):
        run_ecdh_psi_local(_ids(0, 2), _ids(0, 2), receiver="C")
    with pytest.raises(ValueError, match="empty input"):
        run_ecdh_psi_local([], _ids(0, 2))
    with pytest.raises(ValueError, match="duplicate identifiers at party B"):
        run_ecdh_psi_local(_ids(0, 2), [b"x", b"y", b"x"])


def test_ecdh_psi_from_dataframes_with_duplicates_and_missing():
    da = pd.DataFrame({"phone": ["+1 555-0100", "15550101", None, "1 555 0100", "15550199"]})
    db = pd.DataFrame({"tel": ["15550100", "n/a", "15550101", "15550102"]})
    pa = prepare_ids(da, "phone", normalize="digits")
    pb = prepare_ids(db, "tel", normalize="digits")
    assert (pa.n_missing, pa.n_duplicates, pb.n_missing) == (1, 1, 1)
    res = run_ecdh_psi_local(pa, pb)
    got = sorted(zip(res.rows_a.tolist(), res.rows_b.tolist()))
    assert got == [(0, 0), (1, 2)]  # first occurrence of the duplicate is the output row


# -- cardinality -------------------------------------------------------------------------


def test_cardinality():
    a, b = _ids(0, 500), _ids(123, 777)
    res = run_psi_cardinality_local(a, b)
    assert res.size == len(set(a) & set(b)) == 377
    assert res.transcript.bytes == {"A->B": 32 * 500, "B->A": 32 * 654 + 32 * 500}


def test_cardinality_steps_shuffle_hides_positions():
    a = np.array(_ids(0, 200), dtype=object)
    salt = new_salt()
    ka, kb = BlindingKey.generate(), BlindingKey.generate()
    m_a, _ = cardinality.step1_blind_own(a, salt, ka)
    d_shuf = cardinality.step2_double_blind_shuffled(m_a, kb)
    d_plain = cardinality.step2_double_blind(m_a, kb)
    assert sorted(d_shuf.view("S32").tolist()) == sorted(d_plain.view("S32").tolist())
    assert not np.array_equal(d_shuf.view(np.uint8), d_plain.view(np.uint8))
    m_b, _ = cardinality.step1_blind_own(a[50:], salt, kb)
    assert cardinality.step3_count(d_shuf, cardinality.step2_double_blind(m_b, ka)) == 150


# -- intersection-sum --------------------------------------------------------------------


@pytest.fixture(scope="module")
def paillier_keys():
    from cipherray.protocols.paillier import keygen

    return keygen(1024, insecure=True)


@pytest.mark.parametrize("receiver", ["A", "B"])
def test_intersection_sum_ints(paillier_keys, receiver):
    a, b = _ids(0, 400), _ids(300, 600)
    rng = np.random.default_rng(1)
    vals = rng.integers(-1000, 10**6, size=len(b))
    res = run_intersection_sum_local(a, b, vals, paillier_keys=paillier_keys, receiver=receiver)
    inter = set(a) & set(b)
    expect = int(sum(v for y, v in zip(b, vals) if y in inter))
    assert res.size == len(inter) == 100
    assert res.sum == expect and isinstance(res.sum, int)


def test_intersection_sum_floats_and_prepared(paillier_keys):
    db = pd.DataFrame({"id": ["x1", "x2", None, "x3", "x2"], "v": [1.25, 2.5, 9.0, -0.125, 7.0]})
    pb = prepare_ids(db, "id")
    res = run_intersection_sum_local(
        [b"x2", b"x3", b"zz"], pb, db["v"].to_numpy(), paillier_keys=paillier_keys
    )
    assert res.size == 2
    assert res.sum == pytest.approx(2.5 - 0.125, abs=1e-9)  # duplicate x2 -> first row


def test_intersection_sum_steps_mask(paillier_keys):
    pk, sk = paillier_keys
    a = np.array(_ids(0, 50), dtype=object)
    b = np.array(_ids(40, 60), dtype=object)
    vals = np.arange(20, dtype=np.int64) + 1
    salt = new_salt()
    ka, kb = BlindingKey.generate(), BlindingKey.generate()
    m_a, _ = intersection_sum.step1_blind_own(a, salt, ka)
    d_a, m_b, e_b = intersection_sum.step2_double_blind_and_encrypt(m_a, b, vals, salt, kb, pk)
    c, size, r = intersection_sum.step3_match_and_sum(d_a, m_b, e_b, ka, pk, mask=True)
    masked = intersection_sum.step4_decrypt(c, sk)
    assert size == 10 and r != 0
    assert masked != int(vals[:10].sum())  # B sees only S + r
    assert intersection_sum.step5_unmask(masked, r, 0) == int(vals[:10].sum())
    with pytest.raises(ValueError):
        intersection_sum.step2_double_blind_and_encrypt(m_a, b, vals[:3], salt, kb, pk)


def test_intersection_sum_empty_intersection(paillier_keys):
    res = run_intersection_sum_local(
        _ids(0, 10), _ids(10, 20), np.ones(10, dtype=np.int64), paillier_keys=paillier_keys
    )
    assert res.size == 0 and res.sum == 0


# -- multi-party -------------------------------------------------------------------------


@pytest.mark.parametrize("starts,leader", [((0, 100, 150), 0), ((0, 100, 150, 50), 2)])
def test_multiparty(starts, leader):
    sets = [_ids(s, s + 300) for s in starts]
    res = run_multiparty_psi_local(sets, leader=leader)
    expect = set.intersection(*map(set, sets))
    assert res.size == len(expect) > 0
    outs = [_values(s, r) for s, r in zip(sets, res.rows)]
    assert all(o == outs[0] for o in outs)  # row-aligned across all parties
    assert set(outs[0]) == expect
    n = len(sets)
    assert sum(res.transcript.messages.values()) == n * (n - 1) + (n - 1) + (n - 1)
    # documented leakage: the leader can compute every pairwise intersection size
    view = multiparty.leader_view_subset_sizes(res.full_sets)
    assert view[(0, 1)] == len(set(sets[0]) & set(sets[1]))


def test_multiparty_two_parties_and_errors():
    res = run_multiparty_psi_local([_ids(0, 50), _ids(25, 80)])
    assert res.size == 25
    with pytest.raises(ValueError):
        run_multiparty_psi_local([_ids(0, 5)])
    with pytest.raises(ValueError):
        run_multiparty_psi_local([_ids(0, 5), _ids(0, 5)], leader=3)


# -- identifiers -------------------------------------------------------------------------


def test_normalisation_options():
    df = pd.DataFrame({"e": ["  Alice@X.org ", "alice@x.org", "BOB@x.org"], "p": ["a", "b", "c"]})
    raw = prepare_ids(df, "e")
    assert raw.ids.tolist() == [b"  Alice@X.org ", b"alice@x.org", b"BOB@x.org"]
    norm = prepare_ids(df, "e", normalize=["strip", "casefold"])
    assert norm.ids.tolist() == [b"alice@x.org", b"bob@x.org"] and norm.n_duplicates == 1
    per_key = prepare_ids(df, ["e", "p"], normalize={"e": "strip"})
    assert per_key.ids[0] == b"11:Alice@X.org1:a"
    ph = pd.DataFrame({"t": ["+44 (20) 7946-0018", "0044 20 79460018 "]})
    assert prepare_ids(ph, "t", normalize="digits").ids.tolist() == [
        b"442079460018",
        b"00442079460018",
    ]
    sp = pd.DataFrame({"n": ["Jean   Luc", "ﬁne"]})
    out = prepare_ids(sp, "n", normalize=["collapse_space", "nfkc"]).ids.tolist()
    assert out == [b"Jean Luc", b"fine"]
    with pytest.raises(ValueError, match="unknown normalisation"):
        prepare_ids(df, "e", normalize="lower")


def test_composite_keys_unambiguous():
    df = pd.DataFrame({"a": ["x:1", "x"], "b": ["y", "1:y"]})
    p = prepare_ids(df, ["a", "b"])
    assert len(set(p.ids.tolist())) == 2  # naive "a:b" joining would collide
    df2 = pd.DataFrame({"first": ["Ann", "Ann", "Bob"], "dob": [19900101, 19900102, 19900101]})
    p2 = prepare_ids(df2, ["first", "dob"])
    assert p2.ids.tolist() == [b"3:Ann8:19900101", b"3:Ann8:19900102", b"3:Bob8:19900101"]
    # composite keys end to end
    df3 = pd.DataFrame({"first": ["Bob", "Ann"], "dob": [19900101, 19900102]})
    res = run_ecdh_psi_local(p2, prepare_ids(df3, ["first", "dob"]))
    assert sorted(zip(res.rows_a.tolist(), res.rows_b.tolist())) == [(1, 1), (2, 0)]


def test_duplicates_keep_first():
    df = pd.DataFrame({"k": ["b", "a", "b", "c", "a", "b"]})
    p = prepare_ids(df, "k")
    assert p.ids.tolist() == [b"b", b"a", b"c"]
    assert p.rows.tolist() == [0, 1, 3]
    assert p.n_duplicates == 3
    assert p.duplicate_rows.tolist() == [[2, 0], [4, 1], [5, 0]]
    nodedup = prepare_ids(df, "k", dedup=False)
    assert len(nodedup) == 6


def test_missing_values_dropped_or_strict():
    df = pd.DataFrame({"k": ["a", None, "b", "  ", np.nan], "n": [1, 2, None, 4, 5]})
    p = prepare_ids(df, "k", normalize="strip")
    assert p.ids.tolist() == [b"a", b"b"] and p.n_missing == 3 and p.rows.tolist() == [0, 2]
    p2 = prepare_ids(df, ["k", "n"], normalize="strip")  # any component missing drops
    assert p2.rows.tolist() == [0] and p2.n_missing == 4
    with pytest.raises(ValueError, match="'k'"):
        prepare_ids(df, "k", strict=True)
    with pytest.raises(ValueError, match="'n'"):
        prepare_ids(df, ["n"], strict=True)
    # integers with missing values (float column) keep their integer form
    assert prepare_ids(df, "n").ids.tolist() == [b"1", b"2", b"4", b"5"]


def test_missing_key_column_and_empty_input():
    df = pd.DataFrame({"k": ["a"]})
    with pytest.raises(KeyError, match="nope"):
        prepare_ids(df, "nope")
    with pytest.raises(ValueError, match="empty input"):
        prepare_ids(df.iloc[:0], "k")
    with pytest.raises(ValueError, match="empty input"):
        prepare_ids(pd.DataFrame({"k": [None, None]}), "k")
    with pytest.raises(ValueError):
        prepare_ids(df, [])
    with pytest.raises(TypeError):
        prepare_ids({"k": ["a"]}, "k")


def test_key_types_and_mismatch_detection():
    df = pd.DataFrame(
        {
            "s": ["1", "2"],
            "i": [1, 2],
            "f": [1.0, np.nan],
            "x": [1.5, 2.0],
            "b": [True, False],
            "d": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "y": [b"\x00a", b"b"],
        }
    )
    types = describe_key_types(df, list(df.columns))
    assert types == {
        "s": "string",
        "i": "integer",
        "f": "integer",
        "x": "float",
        "b": "boolean",
        "d": "datetime",
        "y": "bytes",
    }
    with pytest.raises(TypeError, match="mixes types"):
        key_type(pd.Series(["a", 1], name="m"))
    check_key_types({"id": "integer"}, {"cust": "integer"})  # names may differ
    with pytest.raises(KeyTypeMismatchError, match="A.id is string but B.cust is integer"):
        check_key_types({"id": "string"}, {"cust": "integer"})
    with pytest.raises(KeyTypeMismatchError, match="2 key column"):
        check_key_types({"a": "string", "b": "string"}, {"a": "string"})
    assert prepare_ids(df, "d").ids[0] == b"2024-01-01T00:00:00"
    assert prepare_ids(df, "b").ids.tolist() == [b"true", b"false"]
    assert prepare_ids(df, "y").ids.tolist() == [b"\x00a", b"b"]
    # nullable integers, categoricals and a non-unique index
    odd = pd.DataFrame(
        {"i": pd.array([7, None, 7], dtype="Int64"), "c": pd.Categorical(["x", "y", "x"])},
        index=[3, 3, 4],
    )
    assert describe_key_types(odd, ["i", "c"]) == {"i": "integer", "c": "string"}
    p = prepare_ids(odd, ["i", "c"])
    assert p.ids.tolist() == [b"1:71:x"] and p.n_missing == 1 and p.n_duplicates == 1


# -- streaming ---------------------------------------------------------------------------


def test_streaming_csv_and_parquet(tmp_path):
    ids = [f"{i:012d}" for i in range(1000)]
    df = pd.DataFrame({"phone": ids + ids[:10] + [None], "v": range(1011)})
    csv = tmp_path / "a.csv"
    df.to_csv(csv, index=False)
    chunks = list(iter_csv_ids(csv, "phone", chunksize=300))
    assert len(chunks) == 4 and chunks[1].rows[0] == 300
    assert chunks[0].ids[0] == b"000000000000"  # leading zeros kept (read as str)
    salt = new_salt()
    hashed = hash_stream(iter_csv_ids(csv, "phone", chunksize=300), salt)
    assert len(hashed.points) == 1000 and hashed.n_duplicates == 10 and hashed.n_missing == 1
    assert np.array_equal(hashed.rows, np.arange(1000))
    assert np.array_equal(
        hashed.points.view(np.uint8), hash_to_points([s.encode() for s in ids], salt).view(np.uint8)
    )
    pq_path = tmp_path / "b.parquet"
    df.iloc[500:].to_parquet(pq_path, row_group_size=200)
    hb = hash_stream(iter_parquet_ids(pq_path, "phone", batch_size=200), salt)
    assert len(hb.points) == 510
    # pre-hashed sets go straight into the protocol (same salt)
    res = run_ecdh_psi_local(hashed, hb, salt=salt)
    assert res.size == 510  # ids 500..999 and the duplicated 0..9 in the parquet slice
    assert set(res.rows_a.tolist()) == set(range(500, 1000)) | set(range(10))
    assert set(res.rows_b.tolist()) == set(range(510))
    with pytest.raises(KeyError):
        next(iter_parquet_ids(pq_path, "nope"))


def test_large_csv_chunk_is_prepared(tmp_path):
    """pandas/Arrow hand back a chunked array for a 10^6-row string chunk read from CSV;
    identifier preparation and dedup must still work."""
    import pandas as pd

    from cipherray.protocols.psi import streaming

    n = 1_000_000
    ids = np.char.add("1", np.arange(n).astype(str).astype("U12"))
    pd.DataFrame({"phone": ids}).to_csv(tmp_path / "big.csv", index=False)
    h = streaming.hash_stream(streaming.iter_csv_ids(tmp_path / "big.csv", ["phone"]), b"s" * 32)
    assert len(h.points) == n and h.n_duplicates == 0
