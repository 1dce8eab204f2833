"""The demo's example data, shared by `lakeloop demo` through Airflow (the default) and
`lakeloop demo --in-process`: the local broker, the spec's topics, and the houses example
generated for the demo's days (files + sale events, with faults; the first day brings a
backlog of past sales; the second half of the days drifts: bigger houses at higher prices;
sales close 2-12 days after listing, so labels mature while the demo runs). Re-running it
rewrites the files identically and does not produce days already produced."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from lakeloop import kafka_broker, kafka_io
from lakeloop.config import AppConfig
from lakeloop.generate import houses as gen
from lakeloop.spec import Pipeline, load_pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoData:
    pipeline: Pipeline
    broker: dict[str, Any]
    topics: list[kafka_io.TopicState]
    days: list[dt.date]
    drift_after: dt.date
    summary: dict[str, Any]


def prepare(cfg: AppConfig, args: argparse.Namespace) -> DemoData:
    pipeline = load_pipeline(cfg, "houses")
    broker = kafka_broker.up(cfg)
    log.info("Kafka broker answers on %s", broker["bootstrap"])
    # the spec's topics, as `lakeloop kafka create-topics` makes them (no broker auto-create)
    topics = [kafka_io.ensure_topic(cfg, source) for source in pipeline.spec.sources.kafka]
    days = [args.start + dt.timedelta(days=n) for n in range(args.days)]
    drift_after = args.drift_after or days[max(0, args.days // 2 - 1)]
    summary = gen.generate(
        pipeline,
        start=args.start,
        days=args.days,
        rows_per_day=args.rows_per_day,
        malformed=args.malformed,
        drift_after=drift_after if drift_after < days[-1] else None,
        history=args.history if args.history is not None else 4 * args.rows_per_day,
        sale_days=(2, 12),
    )
    return DemoData(pipeline, broker, topics, days, drift_after, summary)
