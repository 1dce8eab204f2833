import tests.airflow_env  # noqa: F401  (the Airflow environment, before airflow is imported)
