"""The two Python tasks of the DAGs (everything else is spark-submit of a job file). They run in
the Airflow worker at run time, never at parse time, and import no Spark."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from lakeloop.config import load_config, parse_set_pairs
from lakeloop.orchestration import decision as decisions
from lakeloop.orchestration import plan
from lakeloop.spec import Pipeline, load_pipeline

log = logging.getLogger(__name__)


def _pipeline(spec_ref: str, env: str, set_pairs: list[str]) -> Pipeline:
    return load_pipeline(load_config(env, parse_set_pairs(set_pairs)), spec_ref)


def retrain_trigger(
    spec_ref: str,
    env: str,
    set_pairs: list[str],
    date: str,
    retrain_uri: str,
    outlet_events: Any = None,
    **_: Any,
) -> dict[str, str]:
    """Emit the pipeline's `retrain` Asset event when the monitor's decision row for `date`
    says `retrain_recommended`, with the decision (date, reason, rule) as the event's extra.
    Otherwise skip: a skipped outlet task emits no event, so no training run starts. A missing
    decision row fails the task (the monitor must have written one)."""
    from airflow.sdk import Asset
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    pipeline = _pipeline(spec_ref, env, set_pairs)
    retrain = Asset(name=retrain_uri, uri=retrain_uri)
    try:
        d = decisions.read(pipeline, dt.date.fromisoformat(date))
    except decisions.DecisionMissing as e:
        champion = _champion(pipeline)
        if champion is not None:  # the monitor ran (a champion exists) but wrote nothing
            raise AirflowFailException(str(e)) from None
        extra = {
            "date": date,
            "reason": f"model {pipeline.spec.model.name} has no champion yet: train the first",
            "rule": "no_champion",
        }
        outlet_events[retrain].extra = extra
        log.info("no champion yet: asking for the first training as of %s", date)
        return extra
    if not d.recommended:
        cooling = " (in cooldown)" if d.in_cooldown else ""
        raise AirflowSkipException(f"no retrain for {date}{cooling}: {d.reason}")
    extra = d.extra()
    outlet_events[retrain].extra = extra
    log.info("retrain recommended for %s: %s", date, d.reason)
    return extra


def _champion(pipeline: Pipeline) -> str | None:
    """The registry's champion version of the spec's model (an MLflow look-up, no JVM)."""
    from lakeloop.ml import tracking

    client = tracking.configure(pipeline.cfg)
    ref = tracking.by_alias(client, pipeline.spec.model.name, tracking.CHAMPION)
    return None if ref is None else str(ref.version)


def champion_check(spec_ref: str, env: str, set_pairs: list[str], **_: Any) -> str:
    """Skip the day's scoring (predict, monitor, report) while the model has no champion: a
    new pipeline ingests and builds features until its first model passes the gate."""
    from airflow.sdk.exceptions import AirflowSkipException

    pipeline = _pipeline(spec_ref, env, set_pairs)
    version = _champion(pipeline)
    if version is None:
        raise AirflowSkipException(
            f"model {pipeline.spec.model.name} has no champion yet: nothing to score; the "
            "retrain trigger asks for the first training"
        )
    log.info("champion of %s: v%s", pipeline.spec.model.name, version)
    return version


def training_date(
    timezone: str, triggering_asset_events: Any = None, logical_date: Any = None, **_: Any
) -> str:
    """The date a training run trains as of: the latest date among the retrain events that
    triggered it (the lifecycle day whose monitor asked for it); for a run on the spec's own
    cron or a manual run, the day of its logical date in the pipeline's time zone (as for the
    lifecycle: the run for a day starts after that day's data interval)."""
    dates = []
    for events in (triggering_asset_events or {}).values():
        dates += [e.extra["date"] for e in events if (e.extra or {}).get("date")]
    if dates:
        chosen = max(dates)
        log.info("training as of %s (retrain events for %s)", chosen, sorted(dates))
        return chosen
    if logical_date is None:
        raise ValueError(
            "a training run needs a logical date or a retrain Asset event with a date; "
            "trigger it with a logical date"
        )
    return plan.local_day(logical_date, timezone).isoformat()
