"""One settings object: ENTWATCH_ environment variables, secret password, topic names."""

from __future__ import annotations

import os

import pytest

from streams.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No ENTWATCH_ variables or .env file from the machine running the tests."""
    for name in [n for n in os.environ if n.startswith("ENTWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_settings_are_read_from_entwatch_prefixed_environment_variables(monkeypatch):
    monkeypatch.setenv("ENTWATCH_PARTITIONS", "12")
    monkeypatch.setenv("ENTWATCH_TOPIC_PREFIX", "dg.")
    assert (Settings().partitions, Settings().topic_prefix) == (12, "dg.")


def test_unprefixed_variables_are_ignored(monkeypatch):
    monkeypatch.setenv("PARTITIONS", "12")
    assert Settings().partitions == 4


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path):
    (tmp_path / ".env").write_text("ENTWATCH_APP_ID=entwatch-dongguan\n")
    assert Settings().app_id == "entwatch-dongguan"


def test_an_invalid_value_is_refused(monkeypatch):
    monkeypatch.setenv("ENTWATCH_PARTITIONS", "0")
    with pytest.raises(ValueError, match="partitions"):
        Settings()


def test_the_storage_password_never_prints(monkeypatch):
    monkeypatch.setenv("ENTWATCH_STORAGE_PASSWORD", "s3cr3t-pw")
    settings = Settings()
    assert settings.storage_password.get_secret_value() == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(settings) + str(settings) + repr(settings.storage_password)


def test_topics_carry_the_prefix():
    settings = Settings(topic_prefix="test.")
    assert (settings.topic("utility"), settings.topic("deadletter")) == ("test.enterprise.utility",
                                                                       "test.monitor.deadletter")


def test_topics_without_a_prefix_are_the_spec_defaults():
    assert Settings().topic("alerts") == "monitor.alerts"


@pytest.mark.parametrize("url, servers", [
    ("kafka://127.0.0.1:9092", "127.0.0.1:9092"),
    ("kafka://a:9092;kafka://b:9093", "a:9092,b:9093"),
    ("kafka://a:9092;b:9093", "a:9092,b:9093"),
    ("kafka://a:9092,b:9093", "a:9092,b:9093"),
    ("broker:9092", "broker:9092"),
], ids=["one", "two-urls", "url-then-host", "comma", "no-scheme"])
def test_bootstrap_servers_are_host_port_pairs(url, servers):
    assert Settings(broker_url=url).bootstrap_servers() == servers


def test_empty_storage_url_means_chdb_in_the_data_dir(tmp_path):
    assert Settings(data_dir=tmp_path).effective_storage_url() == f"chdb://{tmp_path.resolve()}/chdb"


class _SchemaSink:
    """Takes the schema statements: storage is not what this test is about."""

    database = "entwatch"

    def version(self):
        return (26, 1)

    def execute(self, statement):
        pass

    def use_database(self):
        pass


def test_the_worker_consumer_fetch_wait_and_batch_size_come_from_the_settings(tmp_path):
    import asyncio

    from streams.app import create_app

    async def created_consumer(settings):
        app = create_app(settings, storage=_SchemaSink())
        return app.consumer._thread._create_worker_consumer(app.transport)

    for wait, batch in ((100, 2000), (750, 300)):
        consumer = asyncio.run(created_consumer(Settings(fetch_max_wait_ms=wait, batch_max=batch, data_dir=tmp_path,
                                                         broker_url="kafka://127.0.0.1:1")))
        assert consumer._fetch_max_wait_ms == wait  # Faust's own code passes 1,500
        assert consumer._max_poll_records == batch  # a fetch is a processing batch
    assert Settings().fetch_max_wait_ms == 100 and Settings().batch_max == 2000
