"""docker-compose.yml and the Dockerfile checked against the code, since no Docker engine runs here."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from portal.settings import PROJECT_ROOT
from temporal.search_attributes import ALL

yaml = pytest.importorskip("yaml")

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
APP_SERVICES = ("migrate", "web", "worker")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def env_of(service: dict) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def published(service: dict) -> dict[int, int]:
    """container port -> host port."""
    ports = {}
    for entry in service.get("ports", []):
        *host, container = str(entry).split(":")
        ports[int(container)] = int(host[-1]) if host else int(container)
    return ports


def acceso_subcommands() -> set[str]:
    from cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("the acceso CLI has no subcommands")


def variables_read_by_the_project() -> set[str]:
    """Names in os.environ look-ups of settings.py, and of the CLI (gunicorn worker count)."""
    sources = [
        PROJECT_ROOT / "portal" / "settings.py",
        *sorted((PROJECT_ROOT / "cli").glob("*.py")),
    ]
    names: set[str] = set()
    for path in sources:
        names |= set(re.findall(r"[\"'](ACCESO_[A-Z0-9_]+)[\"']", path.read_text()))
    return names


def test_every_expected_service_is_declared(services):
    expected = {"temporal-db", "temporal", "temporal-init", "temporal-ui", "app-db", "mailpit"}
    assert expected | set(APP_SERVICES) <= set(services)


def test_app_services_run_real_acceso_subcommands(services):
    subcommands = acceso_subcommands()
    for name in APP_SERVICES:
        command = services[name]["command"]
        assert command[0] == "acceso", name
        assert command[1] in subcommands, f"{name}: `acceso {command[1]}` does not exist"
    from cli import build_parser

    build_parser().parse_args(services["web"]["command"][1:])


def test_app_services_set_only_variables_the_settings_read(services):
    known = variables_read_by_the_project()
    for name in APP_SERVICES:
        for variable in env_of(services[name]):
            assert variable in known, f"{name} sets {variable}, which nothing reads"


def test_ports_line_up(services):
    web_env = env_of(services["web"])
    command = services["web"]["command"]
    web_port = int(command[command.index("--port") + 1])
    assert web_port in published(services["web"])
    assert web_env["ACCESO_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert web_env["ACCESO_SMTP_HOST"] == "mailpit"
    assert web_env["ACCESO_SMTP_PORT"] == "1025"
    assert web_env["ACCESO_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert urlparse(web_env["ACCESO_DATABASE_URL"]).hostname == "app-db"
    assert urlparse(web_env["ACCESO_PUBLIC_BASE_URL"]).port == published(services["web"])[web_port]


def test_the_ui_decodes_through_the_web_apps_codec_endpoint(services):
    ui_env = env_of(services["temporal-ui"])
    web = services["web"]
    endpoint = urlparse(ui_env["TEMPORAL_CODEC_ENDPOINT"])
    command = web["command"]
    web_port = int(command[command.index("--port") + 1])
    assert endpoint.path == "/codec"
    assert endpoint.port == published(web)[web_port]
    assert ui_env["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    ui_origin = f"http://localhost:{published(services['temporal-ui'])[8080]}"
    assert ui_origin in env_of(web)["ACCESO_CODEC_CORS_ORIGINS"].split(",")
    assert ui_env["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_the_codec_endpoint_path_exists_in_the_app():
    from web.codec import bp

    assert bp.url_prefix == "/codec"


def test_workers_scale(services):
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports"), "a published port would stop --scale worker=3"


def test_init_registers_every_search_attribute_the_workflows_use(services):
    script = " ".join(services["temporal-init"]["command"])
    kinds = {"KEYWORD": "Keyword", "BOOL": "Bool"}
    for key in ALL:
        assert f"{key.name}={kinds[key.indexed_value_type.name]}" in script


def test_startup_order_and_health_checks(services):
    for name in ("temporal-db", "temporal", "app-db", "mailpit", "web"):
        assert "healthcheck" in services[name], name
    for name in ("web", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["temporal-init"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])


def test_secrets_come_from_the_environment_not_the_file(services):
    web_env = env_of(services["web"])
    assert web_env["ACCESO_SECRET_KEY"].startswith("${")
    assert web_env["ACCESO_CODEC_KEYS"].startswith("${")


def test_dockerfile_installs_the_project_on_python_311_slim():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "scripts/install.sh /opt/acceso" in dockerfile
    assert "ACCESO_PORTALS_FILE" in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, re.M)
    allowed = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert allowed[allowed.index("*") + 1 :]
    for package in (
        "portal",
        "temporal",
        "mail",
        "processes",
        "activities",
        "web",
        "cli",
        "worker.py",
    ):
        assert f"!{package}" in allowed, package
    assert "!.venv" not in allowed and "!tests" not in allowed


def test_the_compose_file_is_valid_against_the_compose_specification():
    """The Compose Specification's JSON schema, as vendored by check-jsonschema."""
    import json
    from importlib.resources import files

    from jsonschema import validators

    schema_file = files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(yaml.safe_load(COMPOSE.read_text())), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_every_image_is_pinned_to_a_version(services):
    import tomllib

    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag != "latest", f"{name}: {image} floats"
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"
        if "build" in service:
            assert tag == version, f"{name}: the built image is tagged {tag}, not {version}"


def test_workers_serve_metrics_inside_the_network_only(services):
    worker = services["worker"]
    assert env_of(worker)["ACCESO_WORKER_METRICS_ADDRESS"].endswith(":9464")
    assert not worker.get("ports")
    assert env_of(services["web"])["ACCESO_METRICS_TOKEN"].startswith("${")


def test_operations_doc_says_the_stack_was_not_run_here():
    doc = Path(PROJECT_ROOT / "docs" / "operations.md").read_text()
    assert "not run" in doc.lower()
