"""docker-compose.yml is checked by reading it (no Docker engine here)."""

import re
from pathlib import Path

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
    assert 'from_env="CLICKHOUSE_WRITER_PASSWORD"' in xml and 'from_env="CLICKHOUSE_GRAFANA_PASSWORD"' in xml
    assert "GRANT SELECT ON entwatch.*" in xml and "<readonly>2</readonly>" in xml
    env = SERVICES["clickhouse"]["environment"]
    assert {"CLICKHOUSE_WRITER_PASSWORD", "CLICKHOUSE_GRAFANA_PASSWORD"} <= env.keys()
    for name in ("init", "worker"):
        assert "entwatch_writer@" in SERVICES[name]["environment"]["ENTWATCH_STORAGE_URL"]


def test_the_worker_image_copies_the_schema_it_applies_on_start():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY deploy deploy" in dockerfile and "schema.sql" in dockerfile


def test_the_deployed_workers_keep_their_records_in_rocksdb():
    assert SERVICES["worker"]["environment"]["ENTWATCH_STATE_STORE"] == "rocksdb"
