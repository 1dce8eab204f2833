import csv
import datetime as dt
import io
import json
import re

import pytest

from lakeloop.generate import houses as gen

D = dt.date(2026, 3, 1)


def test_same_seed_same_files_and_events(houses):
    c1, m1 = gen.generate_day(houses, D, 200, malformed=0.05, seed=3)
    csv = next((houses.local_root / "landing/houses/listings/date=2026-03-01").glob("*.csv"))
    first = csv.read_text()
    c2, m2 = gen.generate_day(houses, D, 200, malformed=0.05, seed=3)
    assert (c1, m1, first) == (c2, m2, csv.read_text())
    c3, _ = gen.generate_day(houses, D, 200, malformed=0.05, seed=4)
    assert c3 != c1


def test_faults_are_injected_and_counted(houses):
    counts, msgs = gen.generate_day(houses, D, 2000, malformed=0.05)
    assert counts["listings"] == 2000 == counts["csv_records"] + counts["json_records"]
    for k in (
        "csv_too_few",
        "csv_too_many",
        "csv_bad_type",
        "json_not_json",
        "json_wrong_type",
        "quoted_newlines",
        "missing_values",
        "outliers",
        "kafka_not_json",
        "kafka_wrong_type",
    ):
        assert counts[k] > 0, k
    assert counts["sales"] == len(msgs)
    bad = 0
    for _, v in msgs:
        try:
            bad += not isinstance(json.loads(v)["sale_price"], float)
        except (ValueError, UnicodeDecodeError):
            bad += 1
    assert bad == counts["bad_messages"]


def test_clean_data_has_no_faults(houses):
    counts, _ = gen.generate_day(houses, D, 500, malformed=0.0)
    assert counts["malformed_csv"] == counts["malformed_json"] == counts["bad_messages"] == 0


def test_sales_follow_the_known_price_function(houses):
    _, msgs = gen.generate_day(houses, D, 3000, malformed=0.0)
    sales = [json.loads(v) for _, v in msgs]
    assert all(s["sold_at"] > "2026-03-01T00:00:00" for s in sales)  # the label comes later
    prices = [s["sale_price"] for s in sales]
    mean = sum(prices) / len(prices)
    sd = (sum((p - mean) ** 2 for p in prices) / len(prices)) ** 0.5
    assert 0.8 < gen.expected_r2(sd) < 0.99  # learnable, not trivial


def test_history_sales_and_their_listings_precede_the_first_day(houses):
    counts, msgs = gen.generate_day(houses, D, 100, malformed=0.0, history=300)
    assert counts["history_listings"] == counts["history_sales"] == 300
    assert counts["listings"] == 400 and counts["sales"] == len(msgs)
    history = (
        houses.local_root / "landing/houses/listings/date=2026-03-01/history.csv"
    ).read_text()
    rows = {r["listing_id"]: r for r in csv.DictReader(io.StringIO(history))}
    assert len(rows) == 300 and all(re.fullmatch(r"L[0-9]{8}-5[0-9]{5}", i) for i in rows)
    past = [s for s in (json.loads(v) for _, v in msgs) if s["listing_id"] in rows]
    assert len(past) == 300
    start = dt.datetime.combine(D, dt.time())
    for s in past:
        sold = dt.datetime.fromisoformat(s["sold_at"])
        listed = dt.datetime.fromisoformat(rows[s["listing_id"]]["listed_at"])
        assert start - dt.timedelta(days=gen.HISTORY_DAYS) <= sold < start
        assert dt.timedelta(days=4) < sold - listed < dt.timedelta(days=47)
    zipcodes = {s["zipcode"] for s in past}
    assert zipcodes == set(gen.ZIP_EFFECT)  # every zipcode has past sales to aggregate
    again, _ = gen.generate_day(houses, D, 100, malformed=0.0)  # no history: no stale file
    assert again["listings"] == 100 and not list(houses.local_root.glob("landing/**/history.*"))


def test_history_comes_with_produced_sales_only(houses):
    gen.generate(houses, start=D, days=2, rows_per_day=20, produce=False)
    manifests = houses.local_root / "landing/houses/_manifests"
    assert json.loads((manifests / "date=2026-03-01.json").read_text())["listings"] == 20
    gen.generate(houses, start=D, days=2, rows_per_day=20, produce=False, history=30)
    day1 = json.loads((manifests / "date=2026-03-01.json").read_text())
    day2 = json.loads((manifests / "date=2026-03-02.json").read_text())
    assert (day1["listings"], day1["history_sales"], day2["listings"]) == (50, 30, 20)


def test_drift_raises_prices():
    a = {"zipcode": "98101", "sqft": 2000}
    assert gen.true_price(a, drifted=True) == pytest.approx(gen.true_price(a) * 1.25)


@pytest.mark.parametrize("kw,msg", [({"days": 0}, "at least 1"), ({"malformed": 1.5}, r"\[0, 1\)")])
def test_bad_arguments_are_clear(houses, kw, msg):
    args = {"start": D, "days": 1, "rows_per_day": 10, "produce": False, **kw}
    with pytest.raises(ValueError, match=msg):
        gen.generate(houses, **args)
