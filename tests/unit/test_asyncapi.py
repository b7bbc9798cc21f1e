"""deploy/asyncapi.yaml: it names every topic as entwatch creates it, with the committed
schemas; the AsyncAPI CLI (npm, installed by .ci/run into .ci/node) finds it valid; and
docs/asyncapi.html is its current rendering."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams import schemas
from streams.settings import TOPICS
from streams.topics import topic_configs
from tests.conftest import require

ROOT = Path(__file__).parents[2]
DOCUMENT = ROOT / "deploy" / "asyncapi.yaml"
HTML = ROOT / "docs" / "asyncapi.html"
NODE = ROOT / ".ci" / "node" / "node_modules"
CLI = NODE / ".bin" / "asyncapi"
TEMPLATE = NODE / "@asyncapi" / "html-template"
INSTALL = "npm ci --prefix .ci/node (with PUPPETEER_SKIP_DOWNLOAD=1; .ci/run does it)"


def asyncapi(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the pinned AsyncAPI CLI without its usage metrics (which would go to a server)."""
    require(CLI.exists() and shutil.which("node") is not None, f"the AsyncAPI CLI is not installed: {INSTALL}")
    config = tmp_path / "asyncapi-analytics.json"
    config.write_text(json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "entwatch"}))
    env = {**os.environ, "CI": "true", "ASYNCAPI_METRICS_CONFIG_PATH": str(config), "SUPPRESS_NO_CONFIG_WARNING": "1"}
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)


def test_the_asyncapi_document_is_valid(tmp_path):
    done = asyncapi(tmp_path, "validate", str(DOCUMENT), "--fail-severity=warn")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is valid" in done.stdout


def test_the_validator_rejects_a_reference_to_a_missing_schema(tmp_path):
    shutil.copytree(DOCUMENT.parent / "schemas", tmp_path / "schemas")
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(DOCUMENT.read_text().replace("./schemas/risk.v1.json", "./schemas/risk.v9.json"))
    done = asyncapi(tmp_path, "validate", str(broken), "--fail-severity=warn")
    assert done.returncode != 0, done.stdout


def test_the_rendered_html_in_the_docs_is_up_to_date(tmp_path):
    require(TEMPLATE.exists(), f"the AsyncAPI HTML template is not installed: {INSTALL}")
    done = asyncapi(tmp_path, "generate", "fromTemplate", str(DOCUMENT), str(TEMPLATE), "--param", "singleFile=true",
                    "--output", str(tmp_path / "html"), "--force-write", "--no-interactive")
    assert done.returncode == 0, done.stdout + done.stderr
    fresh = (tmp_path / "html" / "index.html").read_bytes()
    assert HTML.exists() and HTML.read_bytes() == fresh, (
        "docs/asyncapi.html is stale: render it again (docs/SUBSCRIBING.md, 'The AsyncAPI document')")


def test_the_document_names_every_topic_as_entwatch_creates_it():
    doc = yaml.safe_load(DOCUMENT.read_text())
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(channels) == set(TOPICS.values())
    for name, address in TOPICS.items():
        config = channels[address]["bindings"]["kafka"]["topicConfiguration"]
        wanted = topic_configs(name)
        assert config["cleanup.policy"] == [wanted["cleanup.policy"]], address
        assert str(config.get("retention.ms", "")) == wanted.get("retention.ms", ""), address
        assert channels[address]["x-producers"] and channels[address]["x-consumers"], address


def test_the_document_uses_the_committed_schemas():
    doc = yaml.safe_load(DOCUMENT.read_text())
    files = {c.filename for c in schemas.CONTRACTS}
    refs = {m["payload"].get("$ref") for m in doc["components"]["messages"].values()}
    refs |= {m["headers"]["$ref"] for m in doc["components"]["messages"].values() if "headers" in m}
    assert {r.removeprefix("./schemas/") for r in refs if r} == files
    assert all((DOCUMENT.parent / r).exists() for r in refs if r)
    messages = doc["components"]["messages"]
    assert messages["alert"]["headers"]["$ref"].endswith("cloudevents-headers.v1.json")
    assert messages["deadLetter"]["headers"]["$ref"].endswith("deadletter-headers.v1.json")
