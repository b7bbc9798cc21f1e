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

    def query(self, sql):
        return []  # no tables yet


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


# ---------------------------------------------------------------- the web port's token

def test_without_a_token_setting_one_is_generated_into_the_data_dir_once(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.api_token_value() is None  # reading never writes
    token = settings.api_token_value(create=True)
    assert len(token) >= 32 and settings.api_token_value(create=True) == token == Settings(data_dir=tmp_path).api_token_value()
    assert (tmp_path / "api-token").stat().st_mode & 0o777 == 0o600


def test_the_token_setting_wins_and_never_prints(monkeypatch, tmp_path):
    monkeypatch.setenv("ENTWATCH_API_TOKEN", "a-token-of-32-characters-exactly")
    settings = Settings(data_dir=tmp_path)
    assert settings.api_token_value(create=True) == "a-token-of-32-characters-exactly"
    assert not (tmp_path / "api-token").exists()
    assert "a-token-of-32" not in repr(settings) + str(settings)


def test_a_short_token_is_refused(monkeypatch):
    monkeypatch.setenv("ENTWATCH_API_TOKEN", "secret")
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings()


def test_the_read_api_defaults_are_safe():
    settings = Settings()
    assert settings.metrics_host == "127.0.0.1" and settings.operator_query is False
    assert settings.reader_user == "entwatch_reader" and settings.read_timeout == 30


@pytest.mark.parametrize("env, name", [
    ({"ENTWATCH_STORAGE_PASSWORD": "change-me-writer"}, "ENTWATCH_STORAGE_PASSWORD"),
    ({"ENTWATCH_STORAGE_URL": "clickhouse://w:change-me-writer@ch:9000/entwatch"}, "ENTWATCH_STORAGE_URL"),
    ({"ENTWATCH_READER_PASSWORD": "Change-Me-reader"}, "ENTWATCH_READER_PASSWORD"),
    ({"ENTWATCH_API_TOKEN": "change-me-api-token"}, "ENTWATCH_API_TOKEN"),
    ({"ENTWATCH_BROKER_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ENTWATCH_BROKER_SASL_USERNAME": "entwatch",
      "ENTWATCH_BROKER_SASL_PASSWORD": "change-me-kafka"}, "ENTWATCH_BROKER_SASL_PASSWORD"),
])
def test_an_example_secret_is_named_never_shown(monkeypatch, env, name):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings().example_secrets() == [name]


def test_real_secrets_are_not_example_secrets(monkeypatch):
    monkeypatch.setenv("ENTWATCH_STORAGE_PASSWORD", "x7-long-and-random")
    assert Settings().example_secrets() == []


def test_the_worker_refuses_an_example_password_in_one_line(monkeypatch):
    from streams.cli import main

    monkeypatch.setenv("ENTWATCH_STORAGE_PASSWORD", "change-me-writer")
    monkeypatch.setenv("ENTWATCH_BROKER_URL", "kafka://127.0.0.1:1")  # never reached
    import io
    from contextlib import redirect_stderr

    err = io.StringIO()
    with redirect_stderr(err):
        assert main(["worker"]) == 2
    assert err.getvalue().count("\n") == 1 and "ENTWATCH_STORAGE_PASSWORD" in err.getvalue()
    assert "change-me-writer" not in err.getvalue()


# ---------------------------------------------------------------- Kafka security

@pytest.fixture
def tls_files(tmp_path):
    """A self-signed certificate and its key (what a CA file and a client certificate look like)."""
    import subprocess

    cert, key = tmp_path / "ca.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=entwatch-test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def test_sasl_needs_a_user_and_a_password(monkeypatch):
    monkeypatch.setenv("ENTWATCH_BROKER_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValueError, match="ENTWATCH_BROKER_SASL_USERNAME and ENTWATCH_BROKER_SASL_PASSWORD"):
        Settings()


def test_a_missing_ca_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("ENTWATCH_BROKER_CA_FILE", str(tmp_path / "nowhere.pem"))
    with pytest.raises(ValueError, match="ENTWATCH_BROKER_CA_FILE: no file"):
        Settings()


def test_sasl_ssl_reaches_aiokafka_kafka_python_and_faust(monkeypatch, tls_files):
    import ssl

    cert, key = tls_files
    for name, value in {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-256", "SASL_USERNAME": "entwatch",
                        "SASL_PASSWORD": "kafka-pw-123", "CA_FILE": str(cert), "CERT_FILE": str(cert),
                        "KEY_FILE": str(key)}.items():
        monkeypatch.setenv(f"ENTWATCH_BROKER_{name}", value)
    settings = Settings()
    options = settings.aiokafka_security()
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "entwatch",
        "sasl_plain_password": "kafka-pw-123"}
    assert isinstance(options["ssl_context"], ssl.SSLContext) and options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    from kafka import KafkaAdminClient
    assert set(settings.kafka_python_security()) <= set(KafkaAdminClient.DEFAULT_CONFIG)
    credentials = settings.faust_credentials()
    assert (credentials.protocol.value, credentials.mechanism.value, credentials.username) == (
        "SASL_SSL", "SCRAM-SHA-256", "entwatch")
    assert "kafka-pw-123" not in repr(settings)


def test_plaintext_means_no_credentials():
    assert Settings().faust_credentials() is None
    assert Settings().aiokafka_security() == {"security_protocol": "PLAINTEXT"}


def test_the_worker_app_gets_the_broker_credentials(monkeypatch, tmp_path, tls_files):
    import asyncio

    from streams.app import create_app

    cert, _ = tls_files
    for name, value in {"SECURITY_PROTOCOL": "SSL", "CA_FILE": str(cert)}.items():
        monkeypatch.setenv(f"ENTWATCH_BROKER_{name}", value)

    async def created(settings):
        return create_app(settings, storage=_SchemaSink())

    app = asyncio.run(created(Settings(data_dir=tmp_path, broker_url="kafka://127.0.0.1:1", api_token="t" * 20)))
    assert app.conf.broker_credentials.protocol.value == "SSL"


def test_the_waits_of_late_meters_and_of_monthly_filing_are_settings_that_reach_the_detectors(monkeypatch):
    from detectors.thresholds import DEFAULT

    assert Settings().thresholds() == DEFAULT  # the defaults are SPEC §4's
    monkeypatch.setenv("ENTWATCH_METER_WAIT_DAYS", "20")
    monkeypatch.setenv("ENTWATCH_SOCIAL_FILED_BY_DAY", "25")
    t = Settings().thresholds()
    assert (t.meter_wait_days, t.tax_filed_by_day, t.social_filed_by_day) == (20, 15, 25)
    monkeypatch.setenv("ENTWATCH_METER_WAIT_DAYS", "41")  # longer than the daily totals are kept
    with pytest.raises(ValueError):
        Settings()
    monkeypatch.setenv("ENTWATCH_METER_WAIT_DAYS", "35")
    monkeypatch.setenv("ENTWATCH_TAX_FILED_BY_DAY", "28")  # the review day, the 29th, is not in every month
    with pytest.raises(ValueError):
        Settings()
