"""Airflow orchestration: the DAG factory (dags.py), its plan as plain data (plan.py), the
project's own Airflow processes (airflow.py) and its REST API (api.py)."""
