import datetime as dt

from lakeloop.timezones import day_bounds, local_date

UTC = dt.UTC


def test_local_date_is_the_calendar_date_in_the_zone(spark):
    df = spark.createDataFrame(
        [
            (dt.datetime(2026, 1, 6, 4, 30, tzinfo=UTC),),  # 20:30 on Jan 5 in Los Angeles
            (dt.datetime(2026, 1, 6, 8, 30, tzinfo=UTC),),  # 00:30 on Jan 6 in Los Angeles
            (dt.datetime(2026, 1, 5, 23, 30, tzinfo=UTC),),  # 11:30 on Jan 6 in Auckland
        ],
        "ts timestamp",
    )
    got = df.select(
        local_date("ts", "UTC").alias("utc"),
        local_date("ts", "America/Los_Angeles").alias("la"),
        local_date("ts", "Pacific/Auckland").alias("akl"),
    ).collect()
    d = dt.date
    assert [tuple(r) for r in got] == [
        (d(2026, 1, 6), d(2026, 1, 5), d(2026, 1, 6)),
        (d(2026, 1, 6), d(2026, 1, 6), d(2026, 1, 6)),
        (d(2026, 1, 5), d(2026, 1, 5), d(2026, 1, 6)),
    ]


def test_day_bounds_follow_daylight_saving_changes():
    lo, hi = day_bounds(dt.date(2026, 3, 8), "America/New_York")  # clocks go forward
    assert (lo, hi) == (
        dt.datetime(2026, 3, 8, 5, tzinfo=UTC),
        dt.datetime(2026, 3, 9, 4, tzinfo=UTC),
    )
    assert hi - lo == dt.timedelta(hours=23)
