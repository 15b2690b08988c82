"""`opens infra …` through Typer's runner, against the private moto server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from processor.cli.infra_cmds import infra_app
from tests.infra.conftest import name_overrides
from tests.infra.test_apply_moto import KINDS

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> dict[str, str]:
    """OPENS_INFRA_* names unique to the test, as an operator would export them."""
    env = {f"OPENS_INFRA_{k.upper()}": str(v) for k, v in name_overrides().items()}
    env["OPENS_KINESIS_STREAM"] = env["OPENS_INFRA_STACK"] + "-hits"
    env["OPENS_DATA_DIR"] = str(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(infra_app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def plan_json() -> list[dict[str, str]]:
    code, out, err = run("plan", "--format", "json")
    assert code == 0, err
    rows: list[dict[str, str]] = json.loads(out)
    return rows


def test_plan_apply_again_destroy(cli_env: dict[str, str]) -> None:
    first = plan_json()
    assert [r["resource"] for r in first] == KINDS
    assert all(set(r) == {"resource", "name", "action"} for r in first)
    assert {r["resource"]: r["action"] for r in first}["realtime-log-config"] == "unsupported"
    assert {r["action"] for r in first} == {"create", "unsupported"}
    assert {r["resource"]: r["name"] for r in first}["kinesis-stream"] == (
        cli_env["OPENS_KINESIS_STREAM"]
    )

    code, out, err = run("apply")
    assert code == 1
    assert err.count("\n") == 1 and "does not implement CloudFront GetRealtimeLogConfig" in err
    assert "--allow-missing-apis" in err and "Traceback" not in err

    code, out, err = run("apply", "--allow-missing-apis", stdin="n\n")
    assert code == 1  # declined: nothing applied
    assert {r["action"] for r in plan_json()} == {"create", "unsupported"}

    code, out, err = run("apply", "--allow-missing-apis", "--yes")
    assert code == 0, err
    assert "created 7" in out
    assert "pixel base URL: https://" in out and ".cloudfront.net" in out
    assert f"kinesis stream: {cli_env['OPENS_KINESIS_STREAM']}" in out

    assert {r["action"] for r in plan_json()} == {"none", "unsupported"}
    code, out, err = run("apply", "--allow-missing-apis", "--yes")
    assert code == 0, err
    assert out.startswith("nothing to do")
    assert "pixel base URL: https://" in out

    code, out, err = run("status")
    assert code == 0, err
    assert "present" in out and "missing" not in out
    assert "real-time records: no records in the last 15 min" in out

    code, out, err = run("destroy", stdin="y\n")
    assert code == 0, err
    assert "destroyed: 7 resource(s)" in out
    assert {r["action"] for r in plan_json()} == {"create", "unsupported"}
    code, out, err = run("destroy", "--yes")
    assert (code, out.strip()) == (0, "nothing to destroy")


@pytest.mark.parametrize("command", ["plan", "apply", "destroy", "status"])
def test_every_command_has_help(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0
    assert "Usage:" in out


def test_bad_setting_is_one_line_naming_the_variable(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENS_INFRA_STREAM_MODE", "sometimes")
    code, _, err = run("plan")
    assert code == 2
    assert err.startswith("error: OPENS_INFRA_STREAM_MODE:")
    assert err.count("\n") == 1


def test_unreachable_endpoint_is_one_line(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, _, err = run("status")
    assert code == 1
    assert err.startswith("error: cannot reach the AWS endpoint")
    assert err.count("\n") == 1
