"""docker-compose.yml is checked by reading it (no Docker engine here)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def one_shot(name: str) -> bool:
    """A job that runs once: no restart, and something waits for it to complete."""
    return SERVICES[name].get("restart") == "no" and any(
        (s.get("depends_on") or {}).get(name, {}).get("condition") == "service_completed_successfully"
        for s in SERVICES.values() if isinstance(s.get("depends_on"), dict))


def test_every_service_has_a_pinned_image_a_health_check_and_a_restart_policy():
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image version"
        assert re.search(r":v?\d", image), f"{name}: pin a version number, not a moving tag"
        if one_shot(name):
            continue
        assert "healthcheck" in service, f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name


def test_the_deployment_has_every_part():
    assert {"kafka", "clickhouse", "init", "worker", "prometheus", "grafana"} <= SERVICES.keys()
    assert one_shot("init")
    assert SERVICES["worker"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert SERVICES["init"]["entrypoint"][-1] == "/app/deploy/init.py"
    assert "grafana-clickhouse-datasource" in SERVICES["grafana"]["environment"]["GF_INSTALL_PLUGINS"]


def test_files_the_compose_file_builds_from_and_mounts_exist():
    for service in SERVICES.values():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()
    assert (ROOT / ".env.example").is_file()
    mounted = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
                mounted.append(source)
            else:
                assert source in COMPOSE["volumes"], f"{name}: {source} is not a named volume"
    for wanted in ("./deploy/prometheus", "./deploy/grafana/provisioning", "./deploy/grafana/dashboards",
                   "./deploy/clickhouse/users.d/entwatch-users.xml"):
        assert wanted in mounted, wanted
    assert (ROOT / "deploy" / "init.py").is_file()  # the image copies deploy/, so the init job finds it


def test_stateful_services_keep_their_data_in_named_volumes():
    for name, path in (("kafka", "/var/lib/kafka/data"), ("clickhouse", "/var/lib/clickhouse"),
                       ("prometheus", "/prometheus"), ("grafana", "/var/lib/grafana")):
        assert any(v.split(":")[0] in COMPOSE["volumes"] and v.split(":")[1] == path for v in SERVICES[name]["volumes"]), name


def test_no_secret_is_written_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if "PASSWORD" in line and ":" in line and not line.strip().startswith("#"):
            assert "${" in line, f"a literal secret: {line.strip()}"


def test_every_variable_the_compose_file_needs_is_in_the_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    needed = set(re.findall(r"\$\{(\w+)", text))
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}
    assert needed <= example, needed - example


def test_clickhouse_users_read_their_passwords_from_the_environment():
    xml = (ROOT / "deploy" / "clickhouse" / "users.d" / "entwatch-users.xml").read_text()
    for name in ("CLICKHOUSE_WRITER_PASSWORD", "CLICKHOUSE_READER_PASSWORD", "CLICKHOUSE_GRAFANA_PASSWORD"):
        assert f'from_env="{name}"' in xml and name in SERVICES["clickhouse"]["environment"]
    assert xml.count("GRANT SELECT ON entwatch.*") == 2
    for name in ("init", "worker"):
        assert "entwatch_writer@" in SERVICES[name]["environment"]["ENTWATCH_STORAGE_URL"]


def test_both_reading_users_are_readonly_1_so_no_query_can_lift_its_limits():
    import xml.etree.ElementTree as ET

    root = ET.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "entwatch-users.xml").getroot()
    for user in ("entwatch_reader", "entwatch_grafana"):
        profile = root.find(f"profiles/{root.find(f'users/{user}/profile').text}")
        assert profile.find("readonly").text == "1", user  # 2 would let a query's SETTINGS lift the limits
        for limit in ("max_execution_time", "max_memory_usage", "max_result_rows"):
            assert int(profile.find(limit).text) > 0, (user, limit)


def test_grafanas_constraint_lets_it_set_only_a_lower_time_limit():
    import xml.etree.ElementTree as ET

    users = ET.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "entwatch-users.xml").getroot()
    root = ET.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "entwatch-constraints.xml").getroot()
    constraints = root.find("profiles/entwatch_grafana/constraints")
    assert [c.tag for c in constraints] == ["max_execution_time"]
    limit = constraints.find("max_execution_time")
    assert limit.find("changeable_in_readonly") is not None
    assert int(limit.find("max").text) <= int(users.find("profiles/entwatch_grafana/max_execution_time").text)
    mounts = " ".join(SERVICES["clickhouse"]["volumes"])
    assert "entwatch-constraints.xml:/etc/clickhouse-server/users.d/" in mounts


def test_the_workers_read_as_the_read_only_user_with_a_token():
    env = SERVICES["worker"]["environment"]
    assert env["ENTWATCH_READER_PASSWORD"] == "${CLICKHOUSE_READER_PASSWORD:?set it in .env}"
    assert env["ENTWATCH_API_TOKEN"] == "${ENTWATCH_API_TOKEN:?set it in .env}"
    assert "ports" not in SERVICES["worker"] and "ENTWATCH_OPERATOR_QUERY" not in env


def test_grafana_listens_on_loopback_unless_configured():
    assert SERVICES["grafana"]["ports"] == ["${GRAFANA_BIND:-127.0.0.1}:${GRAFANA_PORT:-3000}:3000"]
    assert all(p.startswith("127.0.0.1:") for p in SERVICES["prometheus"]["ports"])


def test_the_init_job_sees_every_secret_so_it_can_refuse_example_values():
    env = SERVICES["init"]["environment"]
    assert {"ENTWATCH_STORAGE_PASSWORD", "CLICKHOUSE_READER_PASSWORD", "CLICKHOUSE_GRAFANA_PASSWORD",
            "GRAFANA_ADMIN_PASSWORD", "ENTWATCH_API_TOKEN"} <= env.keys()


def test_every_secret_in_the_env_example_is_a_value_init_refuses():
    secrets = {k: v for k, v in (line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                                 if "=" in line and not line.startswith("#")) if k.endswith(("PASSWORD", "TOKEN"))}
    assert len(secrets) == 6 and all(v.startswith("change-me") for v in secrets.values()), secrets


def test_the_kafka_listener_documents_sasl_ssl_with_acls():
    text = (ROOT / "docker-compose.yml").read_text()
    for needed in ("SASL_SSL", "KAFKA_AUTHORIZER_CLASS_NAME", 'KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND: "false"',
                   "ENTWATCH_BROKER_SECURITY_PROTOCOL", "ENTWATCH_BROKER_CA_FILE"):
        assert needed in text, needed
    assert "ports" not in SERVICES["kafka"]  # plaintext stays on the compose network


def test_the_worker_image_copies_the_schema_it_applies_on_start():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY deploy deploy" in dockerfile and "schema.sql" in dockerfile


def test_the_image_binds_all_interfaces_only_inside_the_container_and_checks_ready_without_a_token():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ENTWATCH_METRICS_HOST=0.0.0.0" in dockerfile and "/ready" in dockerfile.split("HEALTHCHECK", 1)[1]
    assert "ENTWATCH_OPERATOR_QUERY" not in dockerfile


def test_the_deployed_workers_keep_their_records_in_rocksdb():
    assert SERVICES["worker"]["environment"]["ENTWATCH_STATE_STORE"] == "rocksdb"


def test_the_console_reads_as_the_read_only_user_keeps_cases_on_a_volume_and_listens_on_loopback():
    console = SERVICES["console"]
    env = console["environment"]
    assert console["command"] == ["console"] and console["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert env["ENTWATCH_READER_PASSWORD"] == "${CLICKHOUSE_READER_PASSWORD:?set it in .env}"
    assert "entwatch_writer" not in env["ENTWATCH_STORAGE_URL"] and "ENTWATCH_STORAGE_PASSWORD" not in env
    assert any(v.split(":")[0] in COMPOSE["volumes"] and v.split(":")[1] == env["ENTWATCH_DATA_DIR"]
               for v in console["volumes"])
    assert all(p.startswith("127.0.0.1:") for p in console["ports"])


def test_the_console_keeps_its_cases_in_the_postgres_service_with_a_password_from_the_environment():
    console, postgres = SERVICES["console"], SERVICES["postgres"]
    url = console["environment"]["ENTWATCH_CONSOLE_DB_URL"]
    assert url.startswith("postgresql+psycopg://entwatch_console:${CONSOLE_DB_PASSWORD")
    assert url.endswith("@postgres:5432/entwatch_console")
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${CONSOLE_DB_PASSWORD")
    assert console["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "ports" not in postgres  # the compose network only
    assert any(v.split(":")[0] in COMPOSE["volumes"] and v.split(":")[1] == "/var/lib/postgresql/data"
               for v in postgres["volumes"])


def test_the_console_refuses_the_example_database_password(tmp_path):
    from console.cli import ConsoleSettings
    from streams.errors import UserError

    example = "postgresql+psycopg://entwatch_console:change-me-console-db@postgres:5432/entwatch_console"
    with pytest.raises(UserError, match="CONSOLE_DB_PASSWORD"):
        ConsoleSettings(db_url=example).store_url(tmp_path)
    assert ConsoleSettings(db_url=example.replace("change-me-console-db", "s3cret")).store_url(tmp_path).endswith(
        "@postgres:5432/entwatch_console")
