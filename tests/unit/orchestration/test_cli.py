"""`lakeloop backfill` / `lakeloop airflow status` fail in one line with the exit codes of every
command (2: bad arguments, 1: the run cannot happen), never a traceback."""

from __future__ import annotations

from lakeloop.cli import main


def test_backfill_with_an_inverted_range_is_exit_2(caplog):
    args = ["backfill", "--pipeline", "houses", "--start", "2026-01-05", "--end", "2026-01-01"]
    assert main([*args, "--env", "test"]) == 2
    assert "--end 2026-01-01 is before --start 2026-01-05" in caplog.text


def test_backfill_without_a_running_airflow_says_how_to_start_it(caplog):
    args = ["backfill", "--pipeline", "houses", "--start", "2026-01-01", "--end", "2026-01-02"]
    assert main([*args, "--env", "test", "--set", "airflow.port=28999"]) == 1
    assert "Airflow is not running at http://127.0.0.1:28999" in caplog.text
    assert "lakeloop airflow up" in caplog.text and "Traceback" not in caplog.text


def test_airflow_status_of_a_stopped_instance_is_exit_3(capsys, tmp_path):
    args = ["airflow", "status", "--env", "test", "--set", f"airflow.home={tmp_path}"]
    assert main([*args, "--set", "airflow.port=28999"]) == 3
    assert '"running": false' in capsys.readouterr().out
