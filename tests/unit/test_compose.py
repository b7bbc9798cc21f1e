"""docker-compose.yml is checked by reading it (no Docker engine here)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_has_a_pinned_image_a_health_check_and_a_restart_policy():
    for name, service in COMPOSE["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image version"
        assert "healthcheck" in service, f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name


def test_files_the_compose_file_builds_from_exist():
    for service in COMPOSE["services"].values():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()
    assert (ROOT / ".env.example").is_file()


def test_no_secret_is_written_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if "PASSWORD" in line and ":" in line:
            assert "${" in line, f"a literal secret: {line.strip()}"


def test_the_worker_image_copies_the_schema_it_applies_on_start():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY deploy deploy" in dockerfile and "schema.sql" in dockerfile
