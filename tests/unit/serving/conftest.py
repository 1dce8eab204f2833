import pytest

from lakeloop.session import isolated


@pytest.fixture(scope="session")
def spark(spark):
    """The tests' session as the train job uses it for MLlib (`session.isolated`): a session on
    which an earlier test used `DataFrame.observe` (ingest_files does) holds a non-serializable
    ObservationManager, and a fitted model's UDFs then fail with "Task not serializable"."""
    return isolated(spark)
