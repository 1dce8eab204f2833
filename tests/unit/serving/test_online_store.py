"""The SQLite online store: exact round trip of every value type, composite and normalized
keys, newer rows never replaced by older ones, concurrent writers, unusable files."""

from __future__ import annotations

import datetime as dt
import math
import struct
import threading
import time
from decimal import Decimal

import pytest

from lakeloop.config import OnlineStoreSettings, load_config
from lakeloop.serving.online_store import OnlineStoreError, SqliteOnlineStore, open_store
from tests.conftest import ROOT

T0 = dt.datetime(2026, 1, 2, 23, 30, 0, 123456, tzinfo=dt.UTC)
D0 = dt.date(2026, 1, 2)


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def row(key: str, ts: dt.datetime = T0, date: dt.date = D0, **features) -> dict:
    return {"listing_id": key, "feature_ts": ts, "feature_date": date, **features}


@pytest.fixture
def store(tmp_path):
    s = SqliteOnlineStore(tmp_path / "online" / "store.db")
    yield s
    s.close()


def test_every_type_round_trips_exactly(store):
    zone = dt.timezone(dt.timedelta(hours=-5))
    doubles = [0.1 + 0.2, 1e-300, 5e-324, -0.0, 1.7976931348623157e308, 1 / 3, 2.0]
    features = {
        "n": 7,
        "big": 2**62 + 1,
        "neg": -(2**63),
        "flag": True,
        "off": False,
        "text": 'Zürich 東京 🏠 "quoted" \\ \n',
        "empty": "",
        "nothing": None,
        "listed_at": dt.datetime(2026, 1, 2, 18, 30, tzinfo=zone),  # 23:30 UTC
        "naive_ts": dt.datetime(2026, 1, 2, 3, 4, 5),
        "day": dt.date(2025, 12, 31),
        "price": Decimal("123456789.000000001"),
        "tags": ["a", 1, None],
        "inf": math.inf,
        **{f"d{i}": d for i, d in enumerate(doubles)},
    }
    assert store.write("houses", ["listing_id"], [row("L1", **features)]) == 1
    [got] = store.get("houses", [{"listing_id": "L1"}])
    for i, d in enumerate(doubles):
        assert type(got[f"d{i}"]) is float and bits(got[f"d{i}"]) == bits(d), (i, d)
    assert got["d0"] == 0.30000000000000004 and got["d1"] == 1e-300
    for name in ("n", "big", "neg"):
        assert type(got[name]) is int and got[name] == features[name]
    assert got["flag"] is True and got["off"] is False
    assert got["text"] == features["text"] and got["empty"] == "" and got["nothing"] is None
    assert got["listed_at"] == "2026-01-02T23:30:00+00:00"  # UTC
    assert got["feature_ts"] == "2026-01-02T23:30:00.123456+00:00"
    assert got["naive_ts"] == "2026-01-02T03:04:05"
    assert got["day"] == "2025-12-31" and got["feature_date"] == "2026-01-02"
    assert got["price"] == "123456789.000000001"
    assert got["tags"] == ["a", 1, None] and got["inf"] == math.inf
    assert got["listing_id"] == "L1" and set(got) == set(row("L1", **features))


def test_composite_key_and_unknown_keys(store):
    keys = ["region", "vendor"]
    rows = [
        {"region": "eu", "vendor": 1, "feature_ts": T0, "feature_date": D0, "x": 1.5},
        {"region": "eu", "vendor": 2, "feature_ts": T0, "feature_date": D0, "x": 2.5},
        {"region": "us", "vendor": 1, "feature_ts": T0, "feature_date": D0, "x": 3.5},
    ]
    assert store.write("deliveries", keys, rows) == 3
    got = store.get(
        "deliveries",
        [
            {"region": "eu", "vendor": 2},
            {"region": "us", "vendor": 2},  # each part exists, the pair does not
            {"region": "us", "vendor": "1", "extra": "ignored"},  # "1" -> the integer key 1
            {"region": "eu", "vendor": "x"},  # not an integer: matches nothing
            {"region": "eu", "vendor": 2},  # the same key twice
        ],
    )
    assert [g and g["x"] for g in got] == [2.5, None, 3.5, None, 2.5]
    assert store.get("other_pipeline", [{"region": "eu", "vendor": 1}]) == [None]
    assert store.get("deliveries", []) == []
    assert store.count("deliveries") == 3 and store.count("other_pipeline") == 0
    with pytest.raises(OnlineStoreError, match=r"lacks key column\(s\) \['vendor'\]"):
        store.get("deliveries", [{"region": "eu"}])


def test_key_values_normalized_to_the_stored_type(store):
    store.write("houses", ["listing_id"], [row("42", x=1), row("L7", x=2)])
    got = store.get("houses", [{"listing_id": 42}, {"listing_id": "L7"}, {"listing_id": 4.2}])
    assert [g and g["x"] for g in got] == [1, 2, None]


def test_older_row_never_replaces_a_newer_one(store):
    later = T0 + dt.timedelta(hours=1)
    assert store.write("houses", ["listing_id"], [row("L1", later, price=2.0)]) == 1
    # older timestamp: kept the newer one, not counted as written
    assert store.write("houses", ["listing_id"], [row("L1", T0, price=1.0)]) == 0
    # same timestamp, older date (cannot come from one zone, but the pair decides): kept
    assert store.write("houses", ["listing_id"], [row("L1", later, D0 - dt.timedelta(1))]) == 0
    # a null timestamp is older than any
    assert store.write("houses", ["listing_id"], [row("L1", None, D0, price=0.0)]) == 0
    assert store.get("houses", [{"listing_id": "L1"}])[0]["price"] == 2.0
    # not older (the same row again, or newer): replaced
    assert store.write("houses", ["listing_id"], [row("L1", later, price=2.5)]) == 1
    newest = later + dt.timedelta(microseconds=1)
    assert store.write("houses", ["listing_id"], [row("L1", newest, price=3.0)]) == 1
    [got] = store.get("houses", [{"listing_id": "L1"}])
    assert got["price"] == 3.0 and got["feature_ts"] == newest.isoformat()
    assert store.count("houses") == 1


def test_concurrent_writers_wait_for_each_other(tmp_path):
    path = tmp_path / "store.db"
    SqliteOnlineStore(path).close()
    errors: list[BaseException] = []
    written: list[int] = []

    def writer(part: int) -> None:
        try:
            with SqliteOnlineStore(path) as s:
                for batch in range(5):
                    rows = (row(f"P{part}-{i}", T0, x=float(batch)) for i in range(2000))
                    written.append(s.write("houses", ["listing_id"], rows))
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and written == [2000] * 10
    with SqliteOnlineStore(path) as s:
        assert s.count("houses") == 4000
        got = s.get("houses", [{"listing_id": "P0-0"}, {"listing_id": "P1-1999"}])
        assert [g["x"] for g in got] == [4.0, 4.0]


def test_reads_from_many_threads_and_single_key_latency(store):
    store.write("houses", ["listing_id"], [row(f"L{i}", x=i) for i in range(1000)])
    bad: list[object] = []

    def reader(offset: int) -> None:
        for i in range(offset, 1000, 4):
            [g] = store.get("houses", [{"listing_id": f"L{i}"}])
            if g is None or g["x"] != i:
                bad.append((i, g))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        store.get("houses", [{"listing_id": f"L{i % 1000}"}])
    per_get = (time.perf_counter() - t0) / n
    assert per_get < 0.0002, f"{per_get * 1e6:.0f} us per single-key get"


def test_not_a_database_names_the_path(tmp_path):
    path = tmp_path / "online.db"
    path.write_bytes(b"this is not SQLite, just some text " * 200)
    with pytest.raises(OnlineStoreError, match="not a usable SQLite database") as e:
        SqliteOnlineStore(path)
    assert str(path) in str(e.value)


def test_bad_rows_are_refused_with_the_column(store):
    with pytest.raises(OnlineStoreError, match=r"lack column\(s\) \['feature_date'\]"):
        store.write("houses", ["listing_id"], [{"listing_id": "L1", "feature_ts": T0}])
    with pytest.raises(OnlineStoreError, match="column blob: a bytes value"):
        store.write("houses", ["listing_id"], [row("L1", blob=b"\x00")])
    with pytest.raises(OnlineStoreError, match="key column listing_id is null"):
        store.write("houses", ["listing_id"], [row(None)])
    assert store.count("houses") == 0  # a failed write leaves nothing behind
    store.write("houses", ["listing_id"], [row("L1")])
    with pytest.raises(OnlineStoreError, match=r"stored with key \[\"listing_id\"\]"):
        store.write("houses", ["zipcode"], [{"zipcode": "9", "feature_ts": T0, "feature_date": D0}])


def test_open_store_from_config(tmp_path):
    cfg = load_config("test", {"lakehouse_root": str(tmp_path / "lh")}, project_root=ROOT)
    assert cfg.serving.online_store.path == OnlineStoreSettings().path
    where = str(tmp_path / "o" / "s.db")
    cfg = load_config(
        "test",
        {"lakehouse_root": str(tmp_path / "lh"), "serving": {"online_store": {"path": where}}},
        project_root=ROOT,
    )
    with open_store(cfg) as s:
        assert s.path == tmp_path / "o" / "s.db" and s.path.is_file()
