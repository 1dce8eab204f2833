"""One Airflow home per test session, set before anything imports airflow (its config is read
at import). The DAG file reads the project from LAKELOOP_HOME and the config overrides from
LAKELOOP_SET, as under `lakeloop airflow up`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.airflow_env import ROOT  # sets the Airflow environment before airflow is imported


@pytest.fixture
def dag_env(monkeypatch, tmp_path):
    """The environment `lakeloop airflow up` gives the DAG file: this checkout, conf/test, a
    temporary lakehouse. Returns a function that parses dags/ into a DagBag."""
    monkeypatch.setenv("LAKELOOP_HOME", str(ROOT))
    monkeypatch.setenv("LAKELOOP_ENV", "test")
    monkeypatch.setenv("LAKELOOP_SET", json.dumps([f"lakehouse_root={tmp_path / 'lake'}"]))

    def parse(folder: Path = ROOT / "dags"):
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(folder))

    return parse
