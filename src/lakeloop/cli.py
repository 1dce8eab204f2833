"""`lakeloop` command line: run jobs, generate example data, manage the local Kafka broker."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import sys
from pathlib import Path

from lakeloop import logs
from lakeloop.config import (
    AppConfig,
    ConfigError,
    add_config_arguments,
    load_config,
    parse_set_pairs,
)
from lakeloop.jobs.common import JobError
from lakeloop.kafka_broker import BrokerError
from lakeloop.kafka_io import TopicError
from lakeloop.orchestration.server import AirflowError

log = logging.getLogger(__name__)

JOBS = (
    "ingest_files",
    "ingest_kafka",
    "validate",
    "build_features",
    "build_training_set",
    "train",
    "predict",
    "materialize",
    "monitor",
    "report",
)


def _cfg(args: argparse.Namespace):
    return load_config(args.env, parse_set_pairs(args.set))


def cmd_run(args: argparse.Namespace, rest: list[str]) -> int:
    module = importlib.import_module(f"lakeloop.jobs.{args.job}")
    passthrough = rest + (["--env", args.env] if args.env else [])
    for pair in args.set:
        passthrough += ["--set", pair]
    return module.main(passthrough)


def cmd_kafka(args: argparse.Namespace) -> int:
    from lakeloop import kafka_broker

    cfg = _cfg(args)
    if args.action == "create-topics":
        return create_topics(cfg, args.pipeline)
    if args.pipeline:
        log.error("kafka %s: --pipeline belongs to create-topics only", args.action)
        return 2
    result = getattr(kafka_broker, args.action)(cfg)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    if args.action == "status" and not result["answers"]:
        return 3
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    """`lakeloop cluster up|down|status`: HDFS + Spark standalone + MLflow server on this machine."""
    from lakeloop import cluster
    from lakeloop.jars import MissingJarsError

    cfg = _cfg(args)
    try:
        result = getattr(cluster, args.action)(cfg)
    except (cluster.ClusterError, MissingJarsError) as e:
        log.error("cluster %s failed: %s", args.action, e)
        return 1
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    if args.action == "up":
        ep = cluster.endpoints(cfg)
        sys.stdout.write(
            f"HDFS {ep.hdfs_uri}, Spark {ep.spark_master} (UI {ep.spark_ui}), MLflow "
            f"{ep.mlflow_uri}; run jobs on it with --env cluster, stop it with "
            f"`lakeloop cluster down{' --env ' + args.env if args.env else ''}`\n"
        )
    if args.action == "status" and not all(result["ready"].values()):
        return 3
    return 0


def create_topics(cfg: AppConfig, pipeline_name: str | None) -> int:
    """Every Kafka source's topic of the spec, created or brought to the spec's settings."""
    import dataclasses

    from lakeloop import kafka_io
    from lakeloop.spec import load_pipeline

    if not pipeline_name:
        log.error("kafka create-topics needs --pipeline (a name under conf/pipelines or a path)")
        return 2
    pipeline = load_pipeline(cfg, pipeline_name)
    if not pipeline.spec.sources.kafka:
        log.error("pipeline %s declares no Kafka sources: no topic to create", pipeline.name)
        return 1
    results, failed = [], 0
    for source in pipeline.spec.sources.kafka:
        try:
            results.append(dataclasses.asdict(kafka_io.ensure_topic(cfg, source)))
        except (kafka_io.TopicError, ConnectionError) as e:
            log.error("kafka create-topics: %s", e)
            results.append({"topic": source.topic, "error": str(e)})
            failed += 1
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


def _day_range(v: str) -> tuple[int, int]:
    try:
        first, last = (int(x) for x in v.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not FIRST-LAST, e.g. 5-45") from None
    if not 0 <= first <= last:
        raise argparse.ArgumentTypeError(f"{v!r}: need 0 <= FIRST <= LAST")
    return first, last


def cmd_generate(args: argparse.Namespace) -> int:
    from lakeloop.generate import deliveries, houses
    from lakeloop.spec import load_pipeline

    cfg = _cfg(args)
    pipeline = load_pipeline(cfg, args.pipeline)
    if args.pipeline == "deliveries":
        summary = deliveries.generate(
            pipeline, args.start, args.days, args.rows_per_day, seed=args.seed
        )
        sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
        return 0
    summary = houses.generate(
        pipeline,
        start=args.start,
        days=args.days,
        rows_per_day=args.rows_per_day,
        malformed=args.malformed,
        drift_after=args.drift_after,
        seed=args.seed,
        sale_days=args.sale_days,
        produce=not args.no_kafka,
        force=args.force,
    )
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    return 0


def cmd_training_set(args: argparse.Namespace) -> int:
    from lakeloop.ml.lineage import training_set_as_of
    from lakeloop.session import build_spark
    from lakeloop.spec import load_pipeline

    cfg = _cfg(args)
    pipeline = load_pipeline(cfg, args.pipeline)
    spark = build_spark(cfg, app_name=f"lakeloop-training-set-{pipeline.name}")
    try:
        df, lin, (rows, checksum) = training_set_as_of(spark, pipeline, args.as_of)
    except JobError as e:
        log.error("training-set failed: %s", e)
        return 1
    if args.out:
        df.write.mode("overwrite").parquet(args.out)
    result = {
        "model": pipeline.spec.model.name,
        "model_version": args.as_of,
        **{k: getattr(lin, k) for k in lin.__dataclass_fields__},
        "rows_read": rows,
        "checksum": checksum,
        "written_to": args.out,
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


def _history_table(commits: list) -> str:
    """table_ops.Commit rows as aligned text columns (the run id last, unpadded)."""
    head = ("version", "timestamp (UTC)", "operation", "metrics", "job", "run date", "status")
    rows = [(*head, "run id")] + [
        (
            str(c.version),
            c.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            c.operation,
            c.summary,
            c.job or "",
            str(c.run_date or ""),
            c.status or "",
            c.run_id or "",
        )
        for c in commits
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = (
        "  ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )
    return "".join(line.rstrip() + "\n" for line in lines)


def cmd_table(args: argparse.Namespace) -> int:
    import dataclasses

    from pyspark.errors import PySparkException

    from lakeloop import table_ops
    from lakeloop.session import build_spark
    from lakeloop.spec import load_pipeline

    cfg = _cfg(args)
    pipeline = load_pipeline(cfg, args.pipeline)
    table_ops.resolve(pipeline, args.table)  # an unknown key fails before Spark starts
    spark = build_spark(cfg, app_name=f"lakeloop-table-{pipeline.name}")
    try:
        if args.action == "history":
            commits = table_ops.history(spark, pipeline, args.table, args.limit)
            if not args.json:
                sys.stdout.write(_history_table(commits))
                return 0
            result = [{**dataclasses.asdict(c), "summary": c.summary} for c in commits]
        elif args.action == "restore":
            rec = table_ops.restore(spark, pipeline, args.table, args.version, args.timestamp)
            result = {"run_id": rec.run_id, **rec.details, "delta_versions": rec.delta_versions}
        else:
            v = table_ops.vacuum(
                spark, pipeline, args.table, args.retain_hours, args.force, args.dry_run
            )
            result = {
                "table": v.table.name,
                "retain_hours": v.retain_hours,
                "dry_run": args.dry_run,
                "files": v.files if args.dry_run else len(v.files),
                "models_at_risk": [str(a) for a in v.at_risk],
                "run_id": v.run_id,
            }
    except table_ops.Refused as e:
        log.error("table %s refused: %s", args.action, e)
        return 2
    except PySparkException as e:
        log.error("table %s failed in Spark: %s", args.action, str(e).split("\n")[0][:2000])
        return 1
    sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    return 0


def _timestamp(v: str) -> dt.datetime:
    try:
        ts = dt.datetime.fromisoformat(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not an ISO timestamp") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)


def cmd_report(args: argparse.Namespace) -> int:
    """The HTML run report of a date (default: the latest date the monitor ran for), via the
    report job (run-logged, the path printed)."""
    from lakeloop.jobs import report

    argv = ["--pipeline", args.pipeline] + (["--env", args.env] if args.env else [])
    for pair in args.set:
        argv += ["--set", pair]
    date = args.date
    if date is None:
        from lakeloop.session import build_spark
        from lakeloop.spec import load_pipeline

        cfg = _cfg(args)
        pipeline = load_pipeline(cfg, args.pipeline)
        spark = build_spark(cfg, app_name=f"lakeloop-report-{pipeline.name}")
        date = report.latest_date(spark, pipeline)  # none yet: a JobError naming monitor
    return report.main([*argv, "--date", date.isoformat()])


def cmd_demo(args: argparse.Namespace) -> int:
    if args.in_process:
        from lakeloop import demo

        return demo.run_demo(_cfg(args), args)
    from lakeloop.orchestration import demo as airflow_demo

    return airflow_demo.run_airflow_demo(_cfg(args), args)


def cmd_airflow(args: argparse.Namespace) -> int:
    from lakeloop.orchestration import server

    cfg = _cfg(args)
    if args.action == "up":
        result = server.up(cfg, args.set)
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        sys.stdout.write(
            f"Airflow UI: {result['url']} (no login: every user is admin on this local "
            f"instance); stop it with `lakeloop airflow down`\n"
        )
        return 0
    result = getattr(server, args.action)(cfg)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 3 if args.action == "status" and not result["running"] else 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from lakeloop.orchestration import runs
    from lakeloop.spec import load_pipeline

    cfg = _cfg(args)
    pipeline = load_pipeline(cfg, args.pipeline)
    done = runs.backfill(cfg, pipeline, args.start, args.end, not args.no_wait, args.timeout)
    for r in done:
        sys.stdout.write(r.line() + "\n")
    return 0 if all(r.state == "success" for r in done) or args.no_wait else 1


def cmd_spec(args: argparse.Namespace) -> int:
    from lakeloop import specdoc

    return specdoc.run(args)


def cmd_init(args: argparse.Namespace) -> int:
    from lakeloop import project

    try:
        result = project.init_project(args.dir, args.example, args.force)
    except project.ProjectError as e:
        log.error("init: %s", e)
        return 2
    sys.stdout.write(f"lakeloop project ({result.example} example) written to {result.root}:\n")
    sys.stdout.write("".join(f"  {f}\n" for f in result.files))
    sys.stdout.write(
        f"next: `lakeloop setup` once per machine (the jars), then see {result.root}/README.md\n"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """`lakeloop serve --pipeline P`: the registry's champion (and challenger) online, no JVM."""
    from lakeloop.serving import app
    from lakeloop.spec import load_pipeline

    cfg = _cfg(args)
    pipeline = load_pipeline(cfg, args.pipeline)
    if pipeline.spec.model is None:
        raise ConfigError(f"pipeline {pipeline.name} has no `model` section: nothing to serve")
    host = args.host or cfg.serving.host
    port = cfg.serving.port if args.port is None else args.port
    return app.serve(cfg, pipeline, host, port)


def cmd_setup(args: argparse.Namespace) -> int:
    from lakeloop import assets, jars, sparkdefaults

    try:
        results = jars.setup(force=args.force)
    except (jars.SetupError, jars.MissingJarsError) as e:
        log.error("setup failed: %s", e)
        return 1
    for r in results:
        state = "resolved now" if r.resolved else "already there, nothing to do"
        sys.stdout.write(f"{r.part} jars: {r.path} ({r.jars} jars, {state})\n")
    path, changed = sparkdefaults.write(jars.cache_dir("spark"))
    sys.stdout.write(f"spark-defaults.conf: {path} ({'written' if changed else 'up to date'})\n")
    try:  # the CSS/JS/fonts GX's Data Docs load from CDNs, for pages that open offline
        got = assets.setup(force=args.force)
    except assets.AssetsSetupError as e:
        log.error("setup failed: Data Docs assets: %s", e)
        return 1
    state = f"fetched now: {', '.join(got.fetched)}" if got.fetched else "nothing to do"
    sys.stdout.write(
        f"Data Docs assets: {got.path} ({got.packages} packages, "
        f"{got.bytes / 1e6:.1f} MB, {state})\n"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lakeloop", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a job: lakeloop run <job> --pipeline P --date D")
    r.add_argument("job", choices=JOBS)
    add_config_arguments(r)

    k = sub.add_parser(
        "kafka", help="the local single-node KRaft broker; create-topics: a spec's topics"
    )
    k.add_argument("action", choices=("up", "down", "status", "create-topics"))
    k.add_argument(
        "--pipeline",
        default=None,
        help="create-topics: the spec whose Kafka sources' topics to create (name or path)",
    )
    add_config_arguments(k)

    c = sub.add_parser(
        "cluster",
        help="a real cluster on this machine: HDFS NameNode + DataNode, Spark standalone master "
        "+ workers, MLflow server (cluster.* settings)",
    )
    c.add_argument("action", choices=("up", "down", "status"))
    add_config_arguments(c)

    sv = sub.add_parser(
        "serve",
        help="score requests online with the registry's champion (POST /v1/predict, "
        "/v1/predict/by-key; GET /health, /v1/model, /metrics)",
    )
    sv.add_argument("--pipeline", required=True, help="spec name or path")
    sv.add_argument("--host", default=None, help="bind address (default: serving.host)")
    sv.add_argument(
        "--port", type=int, default=None, help="port (default: serving.port; 0: a free one)"
    )
    add_config_arguments(sv)

    g = sub.add_parser("generate", help="generate an example use case's data")
    g.add_argument("pipeline", choices=("houses", "deliveries"))
    g.add_argument("--days", type=int, required=True)
    g.add_argument("--rows-per-day", type=int, required=True)
    g.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1))
    g.add_argument(
        "--malformed",
        type=float,
        default=0.0,
        help="fraction of injected faulty rows/messages, e.g. 0.01",
    )
    g.add_argument(
        "--drift-after",
        type=dt.date.fromisoformat,
        default=None,
        help="listings after this date are larger and pricier (houses: sqft +300, price x1.25)",
    )
    g.add_argument(
        "--sale-days",
        type=_day_range,
        default=(5, 45),
        metavar="FIRST-LAST",
        help="houses: a listing sells this many days after it is listed (default 5-45)",
    )
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--no-kafka", action="store_true", help="write files only")
    g.add_argument("--force", action="store_true", help="produce again days already produced")
    add_config_arguments(g)

    t = sub.add_parser(
        "training-set",
        help="the exact training set of a registered model version (Delta time travel)",
    )
    t.add_argument("--pipeline", default="houses", help="conf/pipelines/<name>.yaml or a path")
    t.add_argument("--as-of", type=int, required=True, metavar="MODEL_VERSION")
    t.add_argument("--out", default=None, help="also write it as Parquet to this folder")
    add_config_arguments(t)

    tb = sub.add_parser("table", help="a pipeline table's Delta history, restore and vacuum")
    actions = tb.add_subparsers(dest="action", required=True)
    th = actions.add_parser("history", help="versions with the run that wrote each")
    th.add_argument("--limit", type=int, default=None, help="the newest N versions only")
    th.add_argument("--json", action="store_true", help="JSON instead of a table")
    tr = actions.add_parser("restore", help="Delta RESTORE to a version (run-logged)")
    when = tr.add_mutually_exclusive_group(required=True)
    when.add_argument("--version", type=int)
    when.add_argument("--timestamp", type=_timestamp, help="ISO; without a zone: UTC")
    tv = actions.add_parser("vacuum", help="delete unreferenced files (run-logged)")
    tv.add_argument("--retain-hours", type=float, default=None, help="default: the table's")
    tv.add_argument("--force", action="store_true", help="allow < 168 h or breaking a model")
    tv.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    for a in (th, tr, tv):
        a.add_argument("--pipeline", default="houses", help="conf/pipelines/<name>.yaml or a path")
        a.add_argument("--table", required=True, metavar="KEY", help="a key of the spec's tables")
        add_config_arguments(a)

    rp = sub.add_parser(
        "report", help="the HTML run report of a date and the index across dates, offline"
    )
    rp.add_argument("--pipeline", required=True, help="conf/pipelines/<name>.yaml or a path")
    rp.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        default=None,
        help="the monitored date, YYYY-MM-DD (default: the latest one in the decisions table)",
    )
    add_config_arguments(rp)

    d = sub.add_parser(
        "demo", help="the whole lifecycle on the embedded defaults, through the project's Airflow"
    )
    d.add_argument("--days", type=int, default=5)
    d.add_argument("--rows-per-day", type=int, default=300)
    d.add_argument(
        "--drift-after",
        type=dt.date.fromisoformat,
        default=None,
        help="listings after this date drift (default: the middle day)",
    )
    d.add_argument(
        "--history", type=int, default=None, help="backlog sales to learn from (default 4 x rows)"
    )
    d.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1))
    d.add_argument("--malformed", type=float, default=0.01)
    d.add_argument(
        "--in-process",
        action="store_true",
        help="run every job in this one process (no Airflow): the quick way to try a spec",
    )
    add_config_arguments(d)

    af = sub.add_parser(
        "airflow", help="the project's own Airflow (api-server + scheduler) on its DAGs"
    )
    af.add_argument("action", choices=("up", "down", "status"))
    add_config_arguments(af)

    bf = sub.add_parser(
        "backfill", help="run the lifecycle DAG for a date range through the Airflow scheduler"
    )
    bf.add_argument("--pipeline", required=True)
    bf.add_argument("--start", required=True, type=dt.date.fromisoformat)
    bf.add_argument("--end", required=True, type=dt.date.fromisoformat)
    bf.add_argument("--no-wait", action="store_true", help="create the runs and return")
    bf.add_argument("--timeout", type=float, default=4 * 3600, help="seconds to wait")
    add_config_arguments(bf)

    i = sub.add_parser("init", help="create a project of your own: conf/, a spec, expectations/")
    i.add_argument("dir", type=Path, help="the new project's folder (created if missing)")
    i.add_argument("--example", choices=("houses", "blank"), default="houses")
    i.add_argument(
        "--force", action="store_true", help="write into a non-empty folder (overwrites same names)"
    )
    su = sub.add_parser(
        "setup",
        help="resolve the JVM jars and the Data Docs' web assets once per user "
        "(~/.cache/lakeloop/jars, ~/.cache/lakeloop/assets)",
    )
    su.add_argument("--force", action="store_true", help="resolve again even when complete")

    from lakeloop import specdoc

    specdoc.add_arguments(
        sub.add_parser("spec", help="the spec's JSON Schema and reference docs; check spec files")
    )
    return p


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "run":
            return cmd_run(args, rest)
        commands = {
            "kafka": cmd_kafka,
            "cluster": cmd_cluster,
            "generate": cmd_generate,
            "demo": cmd_demo,
            "training-set": cmd_training_set,
            "table": cmd_table,
            "spec": cmd_spec,
            "init": cmd_init,
            "setup": cmd_setup,
            "report": cmd_report,
            "airflow": cmd_airflow,
            "backfill": cmd_backfill,
            "serve": cmd_serve,
        }
        return commands[args.command](args)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    except (JobError, TopicError, BrokerError, AirflowError) as e:  # e.g. a demo step
        log.error("%s failed: %s", args.command, e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
