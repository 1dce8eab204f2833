"""Seeded generator for the `houses` use case.

Daily listing files (CSV and JSON lines) under the spec's file globs, and house-sale events
(the label, arriving weeks after the listing) produced to the spec's Kafka topic. Prices follow
`true_price` (a known linear function of the attributes) plus Gaussian noise of NOISE_SD, so the
best achievable R^2 is known (see `expected_r2`). Faults injected at rate `malformed`:

* CSV: too few tokens, too many tokens, a non-numeric value in a numeric column
* JSON: a non-JSON (truncated) line, a wrong-typed value
* Kafka: non-JSON bytes, a wrong-typed sale price
* valid but dirty rows at the same rate: missing values, outliers (sqft x 10), and quoted
  newlines/commas inside the CSV description field (valid CSV that naive parsers break on)

History: the first day also carries a backlog of past sales (`history`, by default as many as
`rows_per_day` when sales are produced): sales dated in the HISTORY_DAYS before the first day,
produced to Kafka with that day's, and their listings (listed 5-45 days before the sale, ids
from HISTORY_ID_OFFSET) in an extra file `history.csv` of the first day. So the windowed
aggregates (e.g. the 90-day median sale price per zipcode) have sales to see from the first
day on, as they would in a lakehouse that did not start empty.

A manifest per day (landing/<pipeline>/_manifests/date=D.json) counts what was written and
injected, so tests can check that ingestion captured every row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import random
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lakeloop.spec import FileSource, Pipeline

log = logging.getLogger(__name__)

ZIP_EFFECT = {f"98{100 + i:03d}": (i - 10) * 9_000.0 for i in range(20)}
CONDITION_EFFECT = {"poor": -25_000.0, "fair": -8_000.0, "good": 0.0, "excellent": 30_000.0}
NOISE_SD = 15_000.0
DRIFT_PRICE_FACTOR = 1.25
# --drift-after: listings after that date are DRIFT_SQFT larger (the covariate shift the monitor
# must flag on sqft alone: bedrooms and bathrooms follow the undrifted size) and sell for
# DRIFT_PRICE_FACTOR times their price (the concept shift that late labels reveal)
DRIFT_SQFT = 300
SALE_DAYS = (5, 45)  # a listing sells (60% do) this many days after it was listed
# backlog sales fall in the 30 days before the first day: inside every 90-day window of the
# first days, and none dated more than a month back (a run date before that has no labels)
HISTORY_DAYS = 30
HISTORY_ID_OFFSET = 500_000  # backlog listing ids: L<listed date>-5xxxxx
REFERENCE_YEAR = 2026
WORDS = [
    "bright",
    "quiet street",
    "near park",
    "renovated kitchen",
    "big yard",
    "views",
    "close to schools",
    "needs love",
    "open plan",
]


def true_price(a: dict[str, Any], drifted: bool = False) -> float:
    """The noise-free price of a listing's attributes (missing values count as typical ones)."""
    sqft = a.get("sqft") or 1800
    price = (
        40_000.0
        + 180.0 * sqft
        + 12_000.0 * (a.get("bedrooms") or 3)
        + 18_000.0 * (a.get("bathrooms") or 2.0)
        - 700.0 * (REFERENCE_YEAR - (a.get("year_built") or 1990))
        + 2.0 * (a.get("lot_sqft") or 6000)
        + ZIP_EFFECT.get(a["zipcode"], 0.0)
        + CONDITION_EFFECT.get(a.get("condition") or "good", 0.0)
        + (15_000.0 if a.get("has_garage") else 0.0)
    )
    return price * (DRIFT_PRICE_FACTOR if drifted else 1.0)


def expected_r2(price_sd: float) -> float:
    """The R^2 a perfect model reaches: 1 - noise variance / price variance."""
    return 1.0 - (NOISE_SD**2) / (price_sd**2)


def _stamp(t: dt.datetime) -> str:
    """ISO text of a time: naive (read as UTC) for a UTC pipeline, with its offset otherwise."""
    if t.tzinfo is None or t.utcoffset() == dt.timedelta(0):
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    return t.isoformat(timespec="seconds")


def _midnight(day: dt.date, zone: str) -> dt.datetime:
    """The start of `day` in `zone` (naive for UTC, as the files have always been)."""
    return dt.datetime.combine(day, dt.time(), None if zone == "UTC" else ZoneInfo(zone))


def _listing(
    rng: random.Random, day: dt.date, i: int, drifted: bool, zone: str = "UTC"
) -> dict[str, Any]:
    """A listing listed at a random time of `day` in the pipeline's zone (so a day's file holds
    that local day's listings, some of them on the next UTC date)."""
    size = int(rng.gauss(1800, 500))
    sqft = size + (DRIFT_SQFT if drifted else 0)
    start = _midnight(day, zone)
    if start.tzinfo is None:
        listed = start + dt.timedelta(seconds=rng.randrange(86_400))
    else:  # 23, 24 or 25 hours: the instants of the local day
        utc = start.astimezone(dt.UTC)
        length = _midnight(day + dt.timedelta(days=1), zone).astimezone(dt.UTC) - utc
        seconds = rng.randrange(int(length.total_seconds()))
        listed = (utc + dt.timedelta(seconds=seconds)).astimezone(start.tzinfo)
    bedrooms = max(1, min(6, round(size / 600 + rng.gauss(0, 0.7))))
    return {
        "listing_id": f"L{day:%Y%m%d}-{i:06d}",
        "listed_at": _stamp(listed),
        "zipcode": rng.choice(list(ZIP_EFFECT)),
        "sqft": max(400, sqft),
        "bedrooms": bedrooms,
        "bathrooms": max(1.0, round(bedrooms * 0.6 + rng.choice([0, 0.5, 1.0]), 1)),
        "year_built": rng.randint(1920, 2025),
        "lot_sqft": rng.randint(2000, 15000),
        "condition": rng.choice(list(CONDITION_EFFECT)),
        "has_garage": rng.random() < 0.6,
        "description": f"{rng.choice(WORDS)}, {rng.choice(WORDS)}",
    }


def _dirty(rng: random.Random, row: dict[str, Any], rate: float, counts: dict[str, int]) -> None:
    """Valid-but-dirty faults: missing values and outliers (kept as they are by ingestion)."""
    if rng.random() < rate:
        row[rng.choice(["sqft", "bathrooms", "year_built", "condition"])] = None
        counts["missing_values"] += 1
    if rng.random() < rate:
        row["sqft"] = (row["sqft"] or 1800) * 10
        counts["outliers"] += 1


def _csv_line(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return buf.getvalue()


def _write_csv(
    path: Path,
    cols: list[str],
    rows: list[dict[str, Any]],
    rng: random.Random,
    rate: float,
    counts: dict[str, int],
) -> int:
    out = [_csv_line(cols)]
    for row in rows:
        values = [row[c] for c in cols]
        if rng.random() < rate:
            kind = rng.choice(["too_few", "too_many", "bad_type"])
            counts[f"csv_{kind}"] += 1
            counts["malformed_csv"] += 1
            if kind == "too_few":
                values = values[: len(values) - 3]
            elif kind == "too_many":
                values = [*values, "extra", 42]
            else:
                values[cols.index("sqft")] = "about 2000"
        elif rng.random() < rate:
            values[cols.index("description")] = f"line one, {row['description']}\nline two"
            counts["quoted_newlines"] += 1
        values = [str(v).lower() if isinstance(v, bool) else v for v in values]
        out.append(_csv_line(values))
    path.write_text("".join(out))
    return len(rows)


def _write_json(
    path: Path, rows: list[dict[str, Any]], rng: random.Random, rate: float, counts: dict[str, int]
) -> int:
    lines = []
    for row in rows:
        if rng.random() < rate:
            kind = rng.choice(["not_json", "wrong_type"])
            counts[f"json_{kind}"] += 1
            counts["malformed_json"] += 1
            if kind == "not_json":
                lines.append(json.dumps(row)[:-12])
            else:
                lines.append(json.dumps({**row, "bedrooms": "three"}))
        else:
            lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return len(rows)


def _sale(
    rng: random.Random, row: dict[str, Any], sold: dt.datetime, drifted: bool
) -> dict[str, Any]:
    price = true_price(row, drifted) + rng.gauss(0, NOISE_SD)
    return {
        "sale_id": f"S{row['listing_id'][1:]}",
        "listing_id": row["listing_id"],
        "zipcode": row["zipcode"],
        "sale_price": round(price, 2),
        "sold_at": _stamp(sold),
    }


def _sales(
    rng: random.Random,
    rows: list[dict[str, Any]],
    drifted: bool,
    sale_days: tuple[int, int] = SALE_DAYS,
) -> list[dict[str, Any]]:
    sales = []
    for row in rows:
        if rng.random() < 0.6:
            listed = dt.datetime.fromisoformat(row["listed_at"])
            days = rng.randint(*sale_days)
            sold = listed + dt.timedelta(days=days, seconds=rng.randrange(86_400))
            sales.append(_sale(rng, row, sold, drifted))
    return sales


def _history(
    rng: random.Random, day: dt.date, n: int, zone: str = "UTC"
) -> list[tuple[dict[str, Any], dt.datetime]]:
    """n past listings with their sale time: sold in the HISTORY_DAYS before `day`, listed 5-45
    days before the sale, so all of it precedes `day`."""
    start = _midnight(day, zone)
    out = []
    for i in range(n):
        sold = start - dt.timedelta(seconds=rng.randrange(1, HISTORY_DAYS * 86_400))
        listed_day = (sold - dt.timedelta(days=rng.randint(5, 45))).date()
        out.append((_listing(rng, listed_day, HISTORY_ID_OFFSET + i, False, zone), sold))
    return out


def _encode_sales(
    rng: random.Random, sales: list[dict[str, Any]], rate: float, counts: dict[str, int]
) -> list[tuple[bytes, bytes]]:
    msgs = []
    for s in sales:
        if rng.random() < rate:
            kind = rng.choice(["not_json", "wrong_type"])
            counts[f"kafka_{kind}"] += 1
            counts["bad_messages"] += 1
            value = (
                (b"\x00\x01not json {" + s["sale_id"].encode())
                if kind == "not_json"
                else json.dumps({**s, "sale_price": "n/a"}).encode()
            )
        else:
            value = json.dumps(s).encode()
        msgs.append((s["listing_id"].encode(), value))
    return msgs


def _file_path(pipeline: Pipeline, source: FileSource, day: dt.date, name: str) -> Path:
    pattern = pipeline.local_file_glob(source, day)
    folder = pattern.parent
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}{pattern.suffix}"


def generate_day(
    pipeline: Pipeline,
    day: dt.date,
    rows: int,
    malformed: float = 0.0,
    drifted: bool = False,
    seed: int = 7,
    history: int = 0,
    sale_days: tuple[int, int] = SALE_DAYS,
) -> tuple[dict[str, int], list]:
    """Write one day's listing files; return the manifest counts and the encoded sale events.
    `history` > 0 adds that many past sales and their listings (see the module docstring)."""
    rng = random.Random(seed * 1_000_003 + day.toordinal())
    counts: dict[str, int] = {
        k: 0
        for k in (
            "listings",
            "csv_records",
            "json_records",
            "malformed_csv",
            "malformed_json",
            "csv_too_few",
            "csv_too_many",
            "csv_bad_type",
            "json_not_json",
            "json_wrong_type",
            "quoted_newlines",
            "missing_values",
            "outliers",
            "sales",
            "bad_messages",
            "kafka_not_json",
            "kafka_wrong_type",
            "history_listings",
            "history_sales",
        )
    }
    zone = pipeline.spec.timezone
    listings = [_listing(rng, day, i, drifted, zone) for i in range(rows)]
    for row in listings:
        _dirty(rng, row, malformed, counts)
    sources = {s.format: s for s in pipeline.spec.sources.files}
    n_csv = rows * 7 // 10 if "json" in sources else rows
    if "csv" in sources:
        cols = [c.name for c in sources["csv"].columns]
        counts["csv_records"] = _write_csv(
            _file_path(pipeline, sources["csv"], day, "listings"),
            cols,
            listings[:n_csv],
            rng,
            malformed,
            counts,
        )
    if "json" in sources:
        counts["json_records"] = _write_json(
            _file_path(pipeline, sources["json"], day, "listings"),
            listings[n_csv:],
            rng,
            malformed,
            counts,
        )
    sales = _sales(rng, listings, drifted, sale_days)
    for src in sources.values():  # a re-run without history leaves no stale backlog file
        _file_path(pipeline, src, day, "history").unlink(missing_ok=True)
    if history:
        hrng = random.Random(f"history-{seed}-{day.isoformat()}")
        past = _history(hrng, day, history, zone)
        old = [row for row, _ in past]
        for row in old:
            _dirty(hrng, row, malformed, counts)
        src = sources.get("csv") or sources["json"]
        path = _file_path(pipeline, src, day, "history")
        if src.format == "csv":
            cols = [c.name for c in src.columns]
            counts["csv_records"] += _write_csv(path, cols, old, hrng, malformed, counts)
        else:
            counts["json_records"] += _write_json(path, old, hrng, malformed, counts)
        sales = [_sale(hrng, row, sold, False) for row, sold in past] + sales
        counts["history_listings"] = counts["history_sales"] = len(past)
    counts["listings"] = counts["csv_records"] + counts["json_records"]
    messages = _encode_sales(rng, sales, malformed, counts)
    counts["sales"] = len(messages)
    return counts, messages


def produce_sales(pipeline: Pipeline, messages: list[tuple[bytes, bytes]]) -> int:
    from kafka import KafkaProducer

    from lakeloop.kafka_io import ensure_topic, python_client_config

    source = pipeline.spec.sources.kafka[0]
    ensure_topic(pipeline.cfg, source)
    producer = KafkaProducer(
        **python_client_config(pipeline.cfg, source),
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
    )
    try:
        futures = [producer.send(source.topic, key=k, value=v) for k, v in messages]
        producer.flush()
        for f in futures:
            f.get(timeout=30)  # raise if any send failed
    finally:
        producer.close()
    return len(messages)


def generate(
    pipeline: Pipeline,
    start: dt.date,
    days: int,
    rows_per_day: int,
    malformed: float = 0.0,
    drift_after: dt.date | None = None,
    seed: int = 7,
    produce: bool = True,
    force: bool = False,
    history: int | None = None,
    sale_days: tuple[int, int] = SALE_DAYS,
) -> dict[str, Any]:
    """Write `days` days of listing files from `start` and produce their sales. `history`
    past sales (default: `rows_per_day` when sales are produced, else 0) come with the first
    day."""
    if days < 1 or rows_per_day < 1:
        raise ValueError("--days and --rows-per-day must be at least 1")
    if history is None:
        history = rows_per_day if produce and pipeline.spec.sources.kafka else 0
    if history < 0:
        raise ValueError(f"history must be >= 0, got {history}")
    if not 0 <= sale_days[0] <= sale_days[1]:
        raise ValueError(f"sale days {sale_days[0]}-{sale_days[1]}: need 0 <= first <= last")
    if not 0.0 <= malformed < 1.0:
        raise ValueError(f"--malformed must be in [0, 1), got {malformed}")
    landing = pipeline.local_root / "landing" / pipeline.name
    total: dict[str, int] = {}
    produced = 0
    for n in range(days):
        day = start + dt.timedelta(days=n)
        drifted = drift_after is not None and day > drift_after
        counts, messages = generate_day(
            pipeline,
            day,
            rows_per_day,
            malformed,
            drifted,
            seed,
            history if n == 0 else 0,
            sale_days,
        )
        marker = landing / "_produced" / f"date={day.isoformat()}"
        counts["produced"] = 0
        if produce and pipeline.spec.sources.kafka and (force or not marker.exists()):
            counts["produced"] = produce_sales(pipeline, messages)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(counts["produced"]))
        elif produce and marker.exists():
            log.info("sales of %s already produced (%s); --force to produce again", day, marker)
        manifest = landing / "_manifests" / f"date={day.isoformat()}.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(
            json.dumps({"date": day.isoformat(), "drifted": drifted, **counts}, indent=2)
        )
        produced += counts["produced"]
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
        log.info(
            "generated %s: %d listings, %d sales (%d produced)",
            day,
            counts["listings"],
            counts["sales"],
            counts["produced"],
        )
    return {
        "pipeline": pipeline.name,
        "start": start,
        "days": days,
        "landing": str(landing),
        **total,
    }
