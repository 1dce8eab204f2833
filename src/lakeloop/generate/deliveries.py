"""Example data for the `deliveries` pipeline: daily order files (CSV) and hourly weather
readings (JSON lines) per region, with a known lateness function.

An order is late (delay > 15 minutes) with probability
`sigmoid(-3 + 0.25 * distance_km + 2.5 * raining_at_order_time + vendor effect)`, where
`raining_at_order_time` is the region's latest reading at or before the order time (readings
are stamped at minute 40 of each hour, so the reading of the order's own clock hour is in its
future for orders before :40). Orders placed after 20:00 local time are not delivered by the
end of their day: they arrive with a null delay and are re-delivered in the next day's file
with it; about 3% of orders are cancelled (their delay stays null)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import math
import random
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lakeloop.spec import FileSource, Pipeline

log = logging.getLogger(__name__)

REGIONS = ("north", "south")
VENDORS = {"v1": 0.0, "v2": 1.0, "v3": -1.0}
ORDER_COLUMNS = [
    *("region", "order_no", "vendor", "ts", "distance_km", "items", "delay_minutes", "note")
]
LATE_AFTER_HOUR = 20  # orders after this local hour are delivered the next day


def late_probability(distance_km: float, raining: bool, vendor: str) -> float:
    z = -3.0 + 0.25 * distance_km + 2.5 * float(raining) + VENDORS[vendor]
    return 1.0 / (1.0 + math.exp(-z))


def _source(pipeline: Pipeline, name: str) -> FileSource:
    for s in pipeline.spec.sources.files:
        if s.name == name:
            return s
    raise ValueError(f"pipeline {pipeline.name} has no file source {name!r}")


def _path(pipeline: Pipeline, source: FileSource, day: dt.date, name: str) -> Path:
    pattern = pipeline.local_file_glob(source, day)
    pattern.parent.mkdir(parents=True, exist_ok=True)
    return pattern.parent / f"{name}{pattern.suffix}"


def _weather(rng: random.Random, day: dt.date, zone: ZoneInfo) -> list[dict[str, Any]]:
    """One reading per region and local hour, at minute 40; rain comes in spells."""
    rows = []
    for region in REGIONS:
        raining = rng.random() < 0.3
        for hour in range(24):
            if rng.random() < 0.25:
                raining = not raining
            at = dt.datetime.combine(day, dt.time(hour, 40), zone)
            rows.append(
                {
                    "region": region,
                    "ts": at.isoformat(timespec="seconds"),
                    "rain_mm": round(rng.uniform(1.0, 8.0), 2) if raining else 0.0,
                    "temp": round(8 + 6 * math.sin(hour / 24 * 2 * math.pi) + rng.gauss(0, 1), 1),
                    "_at": at,
                }
            )
    return rows


def _raining_at(weather: list[dict[str, Any]], region: str, at: dt.datetime) -> bool:
    """The region's latest reading at or before `at` (none: dry)."""
    before = [w for w in weather if w["region"] == region and w["_at"] <= at]
    return bool(before) and max(before, key=lambda w: w["_at"])["rain_mm"] > 0.5


def _orders(
    rng: random.Random, day: dt.date, n: int, index: int, weather: list[dict[str, Any]], zone
) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        region = REGIONS[i % len(REGIONS)]
        at = dt.datetime.combine(day, dt.time(7), zone) + dt.timedelta(
            seconds=rng.randrange(15 * 3600)
        )
        vendor = rng.choice(list(VENDORS))
        distance = round(rng.uniform(0.5, 12.0), 2)
        late = rng.random() < late_probability(distance, _raining_at(weather, region, at), vendor)
        delay = round(rng.uniform(16, 60) if late else rng.uniform(0, 15), 1)
        rows.append(
            {
                "region": region,
                "order_no": index * 100_000 + i // len(REGIONS),
                "vendor": f" {vendor.upper()} " if rng.random() < 0.05 else vendor,
                "ts": at.isoformat(timespec="seconds"),
                "distance_km": distance,
                "items": rng.randint(1, 6),
                "delay_minutes": None if rng.random() < 0.03 else delay,
                "note": rng.choice(["", "ring twice", "leave at door"]),
                "_late_delivery": at.hour >= LATE_AFTER_HOUR,
            }
        )
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ORDER_COLUMNS)
    for r in rows:
        w.writerow(["" if r[c] is None else r[c] for c in ORDER_COLUMNS])
    return buf.getvalue()


def generate(
    pipeline: Pipeline, start: dt.date, days: int, rows_per_day: int, seed: int = 7
) -> dict[str, Any]:
    """Write `days` days of order and weather files from `start`. Each day's file holds the
    day's orders (those after 20:00 without their delay) and yesterday's late deliveries."""
    if days < 1 or rows_per_day < 1:
        raise ValueError("--days and --rows-per-day must be at least 1")
    zone = ZoneInfo(pipeline.spec.timezone)
    orders_src, weather_src = _source(pipeline, "orders"), _source(pipeline, "weather")
    counts = {"orders": 0, "redelivered": 0, "weather": 0}
    pending: list[dict[str, Any]] = []
    for n in range(days):
        day = start + dt.timedelta(days=n)
        rng = random.Random(f"{seed}-{day.isoformat()}")
        weather = _weather(rng, day, zone)
        orders = _orders(rng, day, rows_per_day, n, weather, zone)
        today = [{**o, "delay_minutes": None} if o["_late_delivery"] else o for o in orders]
        _path(pipeline, orders_src, day, "orders").write_text(_csv([*today, *pending]))
        _path(pipeline, weather_src, day, "weather").write_text(
            "".join(
                json.dumps({k: v for k, v in w.items() if not k.startswith("_")}) + "\n"
                for w in weather
            )
        )
        counts["orders"] += len(orders)
        counts["redelivered"] += len(pending)
        counts["weather"] += len(weather)
        pending = [o for o in orders if o["_late_delivery"]]
        log.info("generated %s: %d orders, %d readings", day, len(orders), len(weather))
    return {"pipeline": pipeline.name, "start": start, "days": days, **counts}
