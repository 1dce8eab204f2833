"""Dates in the pipeline's time zone (spec `timezone:`, an IANA name, default UTC).

Every partition date and window boundary lakeloop derives from a timestamp (`feature_date`,
a Kafka row's `_event_date`, the label cut-off of a training set, the test window, the
prediction date) is the local calendar date of that instant in the pipeline's zone, never the
UTC date. The session time zone is UTC (session.py), so an instant is turned into the zone's
wall-clock time with `from_utc_timestamp` and then truncated to its date.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from pyspark.sql import Column
from pyspark.sql import functions as F

UTC = "UTC"


def local_date(ts: Column | str, zone: str) -> Column:
    """The calendar date of the instant `ts` in `zone` (a date column)."""
    c = F.col(ts) if isinstance(ts, str) else ts
    if zone == UTC:
        return F.to_date(c)
    return F.to_date(F.from_utc_timestamp(c, zone))


def day_bounds(day: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of `day` in `zone` as aware UTC datetimes (23, 24 or 25 hours long)."""
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)
