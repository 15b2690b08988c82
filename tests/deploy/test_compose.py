"""docker-compose.yml cannot run here (no Docker engine), so it is validated statically: against
the Compose Specification's JSON schema, and against the code and files it refers to."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from importlib import metadata
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from infra.settings import ENV_PREFIX as INFRA_PREFIX
from infra.settings import InfraSettings
from processor.cli.main import app
from processor.settings import ENV_PREFIX, Settings
from tests.deploy.common import (
    PINNED,
    REPO,
    compose,
    load_yaml,
    mounts,
    service_env,
    with_defaults,
)

pytestmark = pytest.mark.unit
LONG_RUNNING = ("kafka", "clickhouse", "aws", "worker", "prometheus", "grafana")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return compose()


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    # check-jsonschema vendors the Compose Specification schema (with its licence); read the file
    # directly, its CLI is not needed.
    path = metadata.distribution("check-jsonschema").locate_file(
        "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
    )
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def _errors(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_valid_against_the_compose_specification(
    spec: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    assert _errors(spec, compose_schema) == []


def test_the_schema_check_catches_mistakes(
    spec: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    broken = copy.deepcopy(spec)
    broken["services"]["worker"]["depends_on"]["schema"]["condition"] = "service_finished"
    broken["services"]["kafka"]["helthcheck"] = {"test": ["CMD", "true"]}
    errors = _errors(broken, compose_schema)
    assert any("service_finished" in e for e in errors), errors
    assert any("helthcheck" in e for e in errors), errors


def test_long_running_services_have_healthchecks(spec: dict[str, Any]) -> None:
    services = spec["services"]
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name}: no healthcheck"


def test_images_are_pinned(spec: dict[str, Any]) -> None:
    for name, svc in spec["services"].items():
        if "build" in svc:
            continue
        assert PINNED.match(svc["image"]), f"{name}: image {svc['image']!r} is not pinned"


def test_opens_variables_exist_in_settings(spec: dict[str, Any]) -> None:
    known = {ENV_PREFIX + f.upper() for f in Settings.model_fields}
    known |= {INFRA_PREFIX + f.upper() for f in InfraSettings.model_fields}
    seen = set()
    for name, svc in spec["services"].items():
        for key in service_env(svc):
            if key.startswith(ENV_PREFIX):
                seen.add(key)
                assert key in known, f"{name} sets {key}, which no setting reads"
    assert {"OPENS_KAFKA_BROKERS", "OPENS_CLICKHOUSE_URL", "OPENS_WEB_HOST"} <= seen


def test_settings_accept_the_compose_values(spec: dict[str, Any]) -> None:
    env = {
        k.removeprefix(ENV_PREFIX).lower(): with_defaults(v)
        for k, v in service_env(spec["services"]["worker"]).items()
        if k.startswith(ENV_PREFIX) and v is not None
    }
    settings = Settings.model_validate(env)
    assert settings.clickhouse_dsn.startswith("http://")
    assert settings.clickhouse_dsn.endswith("@clickhouse:8123/opens")
    assert settings.kafka_brokers == "kafka:9092"
    assert settings.web_host == "0.0.0.0"


def test_commands_exist(spec: dict[str, Any]) -> None:
    runner = CliRunner()
    for name, svc in spec["services"].items():
        command = svc.get("command")
        if isinstance(command, list) and command[0] == "opens":
            result = runner.invoke(app, [*command[1:], "--help"])
            assert result.exit_code == 0, f"{name}: {' '.join(command)}: {result.output}"


def test_referenced_files_exist(spec: dict[str, Any]) -> None:
    for name, svc in spec["services"].items():
        if "build" in svc:
            build = svc["build"]
            ctx = build if isinstance(build, str) else build["context"]
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (REPO / ctx / dockerfile).is_file(), f"{name}: no {dockerfile} in {ctx}"
        for target, source in mounts(svc).items():
            assert (REPO / source).exists(), f"{name}: {target} mounts missing {source}"
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in (spec.get("volumes") or {}), f"{name}: undeclared volume {source}"
        for env_file in svc.get("env_file", []):
            path = with_defaults(env_file if isinstance(env_file, str) else env_file["path"])
            assert (REPO / path).is_file(), f"{name}: env file {path} missing"


def test_services_built_from_the_repo_share_one_image(spec: dict[str, Any]) -> None:
    """Services running `opens` are built here; none tries to pull the local tag."""
    for name, svc in spec["services"].items():
        if svc.get("image") == "cloudfront-opens:local":
            assert svc.get("build") == ".", f"{name} would try to pull cloudfront-opens:local"


def test_worker_scales_and_waits_for_the_schema(spec: dict[str, Any]) -> None:
    services = spec["services"]
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container name prevents --scale"
    assert not worker.get("ports"), "a fixed host port prevents --scale"
    deps = worker["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["schema"]["condition"] == "service_completed_successfully"
    schema = services["schema"]
    assert schema["command"] == ["opens", "schema", "apply"]
    assert schema["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert service_env(schema) == service_env(worker), "schema and worker must see one database"


def _env_file(path: str) -> dict[str, str]:
    lines = (REPO / path).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_emulator_is_optional_and_real_aws_is_configuration(spec: dict[str, Any]) -> None:
    services = spec["services"]
    for name in ("aws", "aws-init"):
        assert services[name]["profiles"] == ["local-aws"], name
    # Without the profile the worker must still start: the dependency is optional.
    assert services["worker"]["depends_on"]["aws-init"]["required"] is False
    for name in ("worker", "aws-init"):
        assert not any(k.startswith("AWS_") for k in service_env(services[name])), (
            f"{name}: AWS settings belong in the env file, so real AWS needs no edit here"
        )
    local = _env_file("deploy/aws/local.env")
    assert local["AWS_ENDPOINT_URL"] == "http://aws:5000"
    assert services["aws"]["environment"]["MOTO_PORT"] == "5000"
    assert "AWS_ENDPOINT_URL" not in _env_file("deploy/aws/aws.env.example")
    assert "deploy/aws/aws.env" in (REPO / ".gitignore").read_text().splitlines()


def test_grafana_clickhouse_user(spec: dict[str, Any]) -> None:
    """The read-only user in users.d, the data source that logs in with it, and the password
    variable both containers read, agree."""
    services = spec["services"]
    ch = services["clickhouse"]
    users_xml = mounts(ch)["/etc/clickhouse-server/users.d/grafana.xml"]
    root = ET.fromstring((REPO / users_xml).read_text())  # noqa: S314 - our own file
    (user,) = root.find("users")  # type: ignore[misc]
    password_var = user.find("password").get("from_env")  # type: ignore[union-attr]
    assert password_var in service_env(ch)
    assert password_var in service_env(services["grafana"])
    profile = root.find(f"profiles/{user.findtext('profile')}")
    assert profile is not None and profile.findtext("readonly") in ("1", "2")
    grants = [q.text for q in user.iter("query")]
    database = service_env(ch)["CLICKHOUSE_DB"]
    assert grants == [f"GRANT SELECT ON {database}.*"]
    datasources = load_yaml(
        REPO / mounts(services["grafana"])["/etc/grafana/provisioning"] / "datasources/opens.yaml"
    )["datasources"]
    (clickhouse,) = [d for d in datasources if d["type"] == "grafana-clickhouse-datasource"]
    assert clickhouse["jsonData"]["username"] == user.tag
    assert clickhouse["jsonData"]["defaultDatabase"] == database
    assert clickhouse["secureJsonData"]["password"] == f"${{{password_var}}}"
    assert service_env(services["worker"])["OPENS_CLICKHOUSE_DATABASE"] == database


def test_runbook_replay_variables_reach_the_workers(spec: dict[str, Any]) -> None:
    """The README's replay recipe exports variables the compose file passes to the workers,
    with values the settings accept."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Replay from a Kinesis timestamp") :]
    exports = dict(re.findall(r"^export (OPENS_\w+)=(\S+)", section, re.M))
    assert set(exports) == {
        "OPENS_KINESIS_START",
        "OPENS_KINESIS_START_TIMESTAMP",
        "OPENS_TOPIC_SHARDS",
    }
    worker_env = service_env(spec["services"]["worker"])
    for name in exports:
        value = worker_env[name]
        assert value is None or value.startswith("${" + name), f"{name} does not reach the worker"
    settings = Settings.model_validate(
        {k.removeprefix(ENV_PREFIX).lower(): v for k, v in exports.items()}
    )
    assert settings.kinesis_start == "AT_TIMESTAMP"
    assert settings.kinesis_start_timestamp is not None
    assert settings.kinesis_start_timestamp.tzinfo is not None


def test_readme_names_only_real_settings_and_commands() -> None:
    """Operators copy from the README: every OPENS_ variable it names is a setting, and every
    `opens ...` line in its shell blocks is a command that exists."""
    readme = (REPO / "README.md").read_text()
    known = {ENV_PREFIX + f.upper() for f in Settings.model_fields}
    known |= {INFRA_PREFIX + f.upper() for f in InfraSettings.model_fields}
    named = set(re.findall(r"\bOPENS_[A-Z0-9_]*[A-Z0-9]\b", readme))
    assert named - known == set()
    runner = CliRunner()
    blocks = [
        re.sub(r"#.*", "", b)  # shell comments are prose ("… sends opens through …")
        for b in re.findall(r"```bash\n(.*?)```", readme, re.S)
    ]
    commands = re.findall(
        r"(?:^|\s)opens ((?:[a-z][\w-]* ?)+)", "\n".join(blocks).replace("\\\n", " ")
    )
    assert commands
    for words in commands:
        argv = [w for w in words.split() if not w.startswith("-")][:2]
        result = runner.invoke(app, [*argv, "--help"])
        if result.exit_code != 0 and len(argv) == 2:  # the second word was an argument
            result = runner.invoke(app, [argv[0], "--help"])
        assert result.exit_code == 0, f"opens {words}: {result.output}"
