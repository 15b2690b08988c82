from __future__ import annotations

from pathlib import Path

import pytest

from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.errors import ConfigError
from processor.settings import load_settings

pytestmark = pytest.mark.unit


def test_defaults_follow_the_contract() -> None:
    s = load_settings()
    assert s.data_dir == Path(".opens")
    assert s.clickhouse_dsn == f"chdb://{(Path('.opens') / 'clickhouse').resolve()}"
    assert s.kinesis_stream == "opens-pixel-hits"
    assert s.pixel_path == "/o.gif"
    assert s.pixel_secrets == ()
    assert s.ip_privacy == "truncate"
    assert s.realtime_fields == DEFAULT_REALTIME_FIELDS


def test_environment_is_read_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENS_PIXEL_SECRETS", "new-key, old-key")
    monkeypatch.setenv("OPENS_REALTIME_FIELDS", "cs-user-agent,timestamp , x-edge-request-id")
    monkeypatch.setenv("OPENS_CLICKHOUSE_URL", "http://u:hunter2@ch:8123/opens")
    s = load_settings()
    assert [x.get_secret_value() for x in s.pixel_secrets] == ["new-key", "old-key"]
    # Canonical CloudFront order, whatever order the variable lists them in.
    assert s.realtime_fields == ("timestamp", "x-edge-request-id", "cs-user-agent")
    assert s.decode_context().secrets == (b"new-key", b"old-key")


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(Exception, match="frozen"):
        s.kinesis_stream = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("OPENS_IP_PRIVACY", "sometimes"),
        ("OPENS_REALTIME_FIELDS", "timestamp,not-a-field"),
        ("OPENS_CLICKHOUSE_URL", "mysql://x"),
        ("OPENS_TOPIC_PARTITIONS", "zero"),
        ("OPENS_PIXEL_PATH", "no-slash"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.variable == var
    line = info.value.one_line()
    assert line.startswith(f"{var}: ")
    assert "\n" not in line


def test_secrets_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENS_PIXEL_SECRETS", "s3cr3t-one,s3cr3t-two")
    monkeypatch.setenv("OPENS_CLICKHOUSE_URL", "https://analyst:pa55word@ch.example:8443/opens")
    s = load_settings()
    for text in (repr(s), str(s), str(s.redacted())):
        assert "s3cr3t" not in text
        assert "pa55word" not in text
    assert "analyst:***@ch.example" in str(s.redacted())
