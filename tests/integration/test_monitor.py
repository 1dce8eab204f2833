"""monitor end to end on the houses pipeline (New York time, real Kafka): a champion trained on
the backlog of past sales, three days of listings of which the last two are drifted by the
generator (sqft +300), then: drift fires for sqft and for no other watched feature, the retrain
policy waits for its rule (2 of the last 3 runs) and for its cooldown (3 days: the last day's
decision within it), and recommends once the cooldown is over (the last day monitored again
with a 2-day cooldown), a re-run of a date gives identical metric rows, and late sales change
the quality of exactly the prediction date they answer."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import functions as F

from lakeloop import delta_io
from lakeloop.generate import houses as gen
from lakeloop.jobs import (
    build_features,
    build_training_set,
    ingest_files,
    ingest_kafka,
    materialize,
    monitor,
    predict,
    train,
    validate,
)
from lakeloop.jobs.common import JobError
from lakeloop.monitoring.tables import DATA_QUALITY, DECISIONS, DRIFT, ONLINE, QUALITY
from tests.conftest import spec_variant
from tests.integration.test_train_predict import ml_config

ZONE = "America/New_York"
D1 = dt.date(2026, 2, 2)
DAYS = [D1 + dt.timedelta(days=i) for i in range(3)]  # D1 clean, then two drifted days
D3 = DAYS[-1]
WATCHED = [
    "sqft",
    "bedrooms",
    "bathrooms",
    "age_years",
    "lot_sqft",
    "has_garage",
    "zipcode",
    "condition",
]


@pytest.fixture(scope="module")
def lifecycle(spark, broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitor")
    cfg = ml_config(tmp)
    topic = f"test.sales.{uuid.uuid4().hex[:10]}"

    def edit(d, cooldown_days=3):
        d["sources"]["kafka"][0].update(topic=topic)
        d["timezone"] = ZONE
        # ~1000 backlog sales to learn from; a small test window
        d["model"]["test_days"] = 7
        d["model"]["tuning"]["folds"] = 2
        d["retrain"]["cooldown_days"] = cooldown_days
        assert d["retrain"]["drift"] == {"runs": 2, "of_last": 3}

    p, _ = spec_variant(cfg, tmp, edit)
    gen.generate(p, start=D1, days=3, rows_per_day=300, drift_after=D1, history=1000)
    for d in DAYS:
        ingest_files.run(spark, p, d)
    ingest_kafka.run(spark, p, D3)
    for d in DAYS:
        validate.run(spark, p, d)
    build_features.backfill(spark, p, D1, D3)
    build_training_set.run(spark, p, D1)
    trained = train.run(spark, p, D1)
    assert trained.details["decision"] == "promoted", trained.details
    runs = {}
    for d in DAYS:
        predict.run(spark, p, d)
        if d == D3:  # the online server's day (its request log), which the monitor reads too
            materialize.run(spark, p, d)
            SERVED.update(_serve_day(spark, p, d))
        runs[d] = monitor.run(spark, p, d)
    # D3 two days after training: within the 3-day cooldown; the same lakehouse with a 2-day
    # cooldown is past it (what a 4th day with a 3-day cooldown showed, one day less to run)
    in_cooldown = {r.run_date: r for r in _table(spark, p, DECISIONS).collect()}
    p, _ = spec_variant(cfg, tmp, lambda d: edit(d, cooldown_days=2))
    runs[D3] = monitor.run(spark, p, D3)
    return p, runs, in_cooldown


SERVED: dict[str, tuple[float, int, float]] = {}  # listing -> online score, version, batch score


def _serve_day(spark, p, day):
    """`lakeloop serve`'s app (in process) answering, at noon of `day` in the pipeline's zone,
    by-key requests for every listing predict scored that day (features from the online store
    materialize wrote), plus two refused requests; stopping it flushes its request log."""
    from starlette.testclient import TestClient

    from lakeloop.serving.app import create_app

    noon = dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(ZONE)).astimezone(dt.UTC)
    batch = {
        r.listing_id: (r.prediction, r.model_version)
        for r in _table(spark, p, "predictions")
        .where((F.col("prediction_date") == day) & F.col("prediction").isNotNull())
        .collect()
    }
    keys = [{"listing_id": k} for k in sorted(batch)]
    served = {}
    with TestClient(create_app(p.cfg, p, clock=lambda: noon)) as client:
        for i in range(0, len(keys), 100):
            r = client.post("/v1/predict/by-key", json={"keys": keys[i : i + 100]})
            assert r.status_code == 200, r.text
            for k, got in zip(keys[i : i + 100], r.json()["predictions"], strict=True):
                served[k["listing_id"]] = (got["prediction"], got["model_version"])
        assert client.post("/v1/predict", json={"records": [{"sqft": "big"}]}).status_code == 422
        assert client.post("/v1/predict", json={"records": []}).status_code == 422
    return {k: (*served[k], batch[k][0]) for k in batch if batch[k][1] == served[k][1]}


def _table(spark, p, key):
    return delta_io.read(spark, p.table_path(key))


def test_drift_fires_for_the_drifted_feature_only(spark, lifecycle):
    p, _, _ = lifecycle
    rows = _table(spark, p, DRIFT).collect()
    by = {(r.run_date, r.feature): r for r in rows}
    assert {f for (d, f) in by if d == D1} == {*WATCHED, "prediction"}
    for d in DAYS:
        for f in WATCHED:
            r = by[(d, f)]
            should = f == "sqft" and d > D1
            assert r.drifted == should, (d, f, r.psi)
            assert r.threshold == 0.2 and r.rows_current == 300
            assert len(r.bins) == len(r.reference_counts) == len(r.current_counts)
        assert by[(d, "sqft")].ks is not None and by[(d, "zipcode")].jensen_shannon is not None
    assert by[(D1, "sqft")].psi < 0.1 and by[(DAYS[1], "sqft")].psi > 3 * by[(D1, "sqft")].psi
    # prediction drift: the champion's scores of the day against its test-window scores
    pred = by[(D1, "prediction")]
    assert pred.kind == "prediction" and pred.psi is not None and pred.ks is not None
    assert pred.rows_current == 300 and len(pred.bins) == len(pred.current_counts)
    assert {r.model_version for r in rows} == {1} and len({r.run_id for r in rows}) == len(DAYS)


def test_policy_waits_for_its_rule_and_for_the_cooldown(spark, lifecycle):
    p, runs, cooling = lifecycle
    # trained on D1, cooldown 3 days; drift needs 2 of the last 3 runs over 0.2
    assert (cooling[DAYS[0]].rule, cooling[DAYS[0]].retrain_recommended) == ("none", False)
    assert (cooling[DAYS[1]].rule, cooling[DAYS[1]].retrain_recommended) == ("none", False)
    assert (cooling[D3].rule, cooling[D3].in_cooldown) == ("drift", True)
    assert not cooling[D3].retrain_recommended and "cooldown 3 days" in cooling[D3].reason
    # D3 again with a 2-day cooldown: past it, the rule recommends; the other dates unchanged
    got = {r.run_date: r for r in _table(spark, p, DECISIONS).collect()}
    assert {d: got[d].asDict() for d in DAYS[:2]} == {d: cooling[d].asDict() for d in DAYS[:2]}
    assert (got[D3].rule, got[D3].retrain_recommended, got[D3].in_cooldown) == (
        "drift",
        True,
        False,
    )
    evidence = json.loads(got[D3].evidence)
    assert evidence["drift"]["runs_over"] == 2 and evidence["cooldown"]["days_since"] == 2
    assert evidence["cooldown"]["cooldown_days"] == 2 and got[D3].last_trained == D1
    assert runs[D3].details["retrain_recommended"] == "true"
    assert "sqft" in runs[D3].details["drifted"]


def test_data_quality_trend_has_a_row_per_table_and_day(spark, lifecycle):
    p, _, _ = lifecycle
    rows = _table(spark, p, DATA_QUALITY).where(F.col("run_date") == D3).collect()
    listings = {r.data_date: r for r in rows if r.table == p.spec.table("silver_listings")}
    assert set(listings) == set(DAYS)
    r = listings[D1]
    assert r.rows_in == r.silver_rows + r.quarantined and r.rows_in >= 1300
    assert r.pass_rate == pytest.approx(r.silver_rows / r.rows_in)
    assert r.validate_run_id and r.model_version == 1


def _metric_rows(spark, p, key, date):
    cols = [c for c in _table(spark, p, key).columns if c != "run_id"]
    return sorted(
        tuple(json.dumps(v, default=str) for v in r)
        for r in _table(spark, p, key).where(F.col("run_date") == date).select(*cols).collect()
    )


def test_a_rerun_gives_identical_metric_rows(spark, lifecycle):
    p, _, _ = lifecycle
    keys = (DRIFT, QUALITY, DATA_QUALITY, DECISIONS, ONLINE)
    before = {k: _metric_rows(spark, p, k, D3) for k in keys}
    others = _metric_rows(spark, p, DRIFT, DAYS[1])
    again = monitor.run(spark, p, D3)
    for key, rows in before.items():
        assert _metric_rows(spark, p, key, D3) == rows, key
    assert _metric_rows(spark, p, DRIFT, DAYS[1]) == others  # other dates untouched
    assert {r.run_id for r in _table(spark, p, DRIFT).where(F.col("run_date") == D3).collect()} == {
        again.run_id
    }


def test_late_labels_change_the_quality_of_their_prediction_date_only(spark, lifecycle):
    p, _, _ = lifecycle
    quality = lambda: {  # noqa: E731
        (r.prediction_date, r.metric): r
        for r in _table(spark, p, QUALITY)
        .where((F.col("run_date") == D3) & (F.col("role") == "champion"))
        .collect()
    }
    before = quality()
    assert before[(D1, "rmse")].matured_labels == 0 and before[(D1, "rmse")].value is None
    # sales of 60 of D1's listings land, sold two days after D1 (on D3, New York time)
    listings = (
        delta_io.read(spark, p.table_path("silver_listings"))
        .where(F.col("_ingest_date") == D1)
        .where(~F.col("listing_id").contains("-5"))  # not the backlog's
        .orderBy("listing_id")
        .limit(60)
        .collect()
    )
    rng = random.Random(3)
    sold = dt.datetime(2026, 2, 4, 15, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    messages = []
    for r in listings:
        attrs = r.asDict()
        price = gen.true_price(attrs) + rng.gauss(0, gen.NOISE_SD)
        sale = {
            "sale_id": f"LATE-{r.listing_id}",
            "listing_id": r.listing_id,
            "zipcode": r.zipcode,
            "sale_price": round(price, 2),
            "sold_at": sold.isoformat(),
        }
        messages.append((r.listing_id.encode(), json.dumps(sale).encode()))
    gen.produce_sales(p, messages)
    ingest_kafka.run(spark, p, D3)
    validate.run(spark, p, D3)
    monitor.run(spark, p, D3)
    after = quality()
    rmse = after[(D1, "rmse")]
    assert rmse.matured_labels == 60 and 5_000 < rmse.value < 40_000
    assert rmse.label_version > before[(D1, "rmse")].label_version
    assert rmse.test_value is not None
    for d in DAYS[1:]:  # the other prediction dates are what they were
        assert after[(d, "rmse")].matured_labels == before[(d, "rmse")].matured_labels == 0
        assert after[(d, "rmse")].value is None


def test_online_scores_equal_the_batch_and_the_monitor_reads_the_served_day(spark, lifecycle):
    p, runs, _ = lifecycle
    # every listing of D3 answered online with the batch path's score of the same row
    assert len(SERVED) > 250, len(SERVED)
    worst = max(abs(a - b) / max(1.0, abs(b)) for a, _, b in SERVED.values())
    assert worst <= 1e-9, worst
    rows = _table(spark, p, ONLINE).where(F.col("run_date") == D3).collect()
    traffic = {r.model_alias: r for r in rows if r.section == "traffic"}
    # no challenger: the champion answered every record; the two bad requests are counted
    assert set(traffic) == {"champion", "(rejected)"}
    assert traffic["champion"].rows == len(SERVED) and traffic["champion"].model_version == 1
    assert traffic["champion"].requests == -(-len(SERVED) // 100)
    assert traffic["(rejected)"].rows == 2 and traffic["(rejected)"].requests == 2
    assert 0 < traffic["champion"].latency_p50_ms <= traffic["champion"].latency_p99_ms
    mean = sum(a for a, _, _ in SERVED.values()) / len(SERVED)
    assert traffic["champion"].mean_prediction == pytest.approx(mean, rel=1e-9)
    # the served features drifted as the day's batch did: sqft only (D3 is a drifted day)
    drift = {r.feature: r for r in rows if r.section == "drift"}
    assert set(drift) == set(WATCHED) and drift["sqft"].drifted and drift["sqft"].psi > 0.2
    assert [f for f, r in drift.items() if r.drifted] == ["sqft"]
    batch_psi = {
        r.feature: r.psi for r in _table(spark, p, DRIFT).where(F.col("run_date") == D3).collect()
    }
    assert drift["sqft"].psi == pytest.approx(batch_psi["sqft"], rel=1e-6)
    # quality: one row per metric for the champion; no D3 listing has sold by D3
    quality = [r for r in rows if r.section == "quality"]
    assert {r.metric for r in quality} == {"rmse", "mae", "r2"}
    assert {(r.model_alias, r.matured_labels) for r in quality} == {("champion", 0)}
    assert "champion v1" in runs[D3].details["online"]


def test_monitor_without_predictions_for_the_date_says_what_to_run(spark, lifecycle):
    p, _, _ = lifecycle
    with pytest.raises(JobError, match="run predict for 2026-02-10 first"):
        monitor.run(spark, p, dt.date(2026, 2, 10))


def test_the_run_report_shows_every_section_with_a_plot(spark, lifecycle):
    from lakeloop.jobs import report as report_job
    from tests.unit.reports.test_html_report import SERVING_SECTIONS, Page

    p, _, _ = lifecycle
    rec = report_job.run(spark, p, D3)  # after the late labels: matured predictions to plot
    page = Page(open(rec.details["report"]).read())
    assert tuple(page.sections) == SERVING_SECTIONS
    assert {s: n for s, n in page.sections.items() if n == 0} == {}, page.notes
    assert not [u for u in page.scripts if "://" in u or u.startswith("//")]
    words = " ".join(page.text)
    assert "sqft" in words and "RETRAIN RECOMMENDED" in words
    index = Page(open(rec.details["index"]).read())
    assert f"{D3}.html" in index.links
