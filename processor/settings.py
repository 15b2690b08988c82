"""One frozen settings object, built once at the entry point (DESIGN §8).

Environment variables carry the ``OPENS_`` prefix; a ``.env`` file in the working directory is
read too. Nothing here reads the environment at import time: call ``load_settings()``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from processor.core.context import DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS, UnknownFieldError, canonical_order
from processor.errors import ConfigError

ENV_PREFIX = "OPENS_"
S = TypeVar("S", bound=BaseSettings)
KinesisStart = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def mask_url(url: str) -> str:
    """``http://user:secret@host`` → ``http://user:***@host``."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


class Settings(BaseSettings):
    """Everything the pipeline can be told. Field names map to ``OPENS_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        frozen=True,
        extra="ignore",
    )

    # --- contract (DESIGN §8) ---
    data_dir: Path = Field(Path(".opens"), description="local state: embedded ClickHouse, caches")
    clickhouse_url: str = Field("", description="chdb://… or http(s)://user:pass@host:port/db")
    kafka_brokers: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers")
    kinesis_stream: str = Field("opens-pixel-hits", min_length=1, max_length=128)
    realtime_fields: Annotated[tuple[str, ...], NoDecode] = DEFAULT_REALTIME_FIELDS
    pixel_path: str = Field("/o.gif", pattern=r"^/\S*$")
    pixel_secrets: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    pixel_base_url: str = Field("", description="https://… the pixel is served from (pixel-url)")
    ip_privacy: Literal["truncate", "full", "drop"] = "truncate"

    # --- ClickHouse ---
    clickhouse_database: str = Field("opens", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    hits_ttl_days: int = Field(
        0, ge=0, description="retention of raw hits in days (0 = keep); aggregates are kept"
    )
    seal_interval_seconds: float = Field(
        60.0, ge=0, description="how often the worker seals quiet days' counts (0 = never)"
    )
    seal_margin_seconds: int = Field(
        300, ge=0, description="a day is sealed once it has had no new row for this long"
    )
    query_host: str = Field("127.0.0.1", description="read-only ClickHouse-compatible endpoint")
    query_port: int = Field(8124, ge=1, le=65535)

    # --- read-only query endpoint and dashboard: who may ask, and how much ---
    query_user: str = Field(
        "", description="user the endpoint requires (HTTP basic / X-ClickHouse-User)"
    )
    query_password: SecretStr = Field(SecretStr(""), description="that user's password")
    query_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Host names the endpoint answers to besides loopback and its bind address"
    )
    query_max_execution_seconds: float = Field(30.0, gt=0, le=3600)
    query_max_memory_bytes: int = Field(1 << 30, ge=16 << 20, description="per query")
    query_max_result_rows: int = Field(10_000_000, ge=1)
    query_max_result_bytes: int = Field(256 << 20, ge=1 << 20)
    query_max_threads: int = Field(2, ge=1, le=64, description="threads one query may use")
    query_concurrency: int = Field(4, ge=1, le=64, description="queries run at once; more get 503")
    clickhouse_reader_url: str = Field(
        "", description="http(s)://… of a read-only ClickHouse account the endpoint reads with"
    )

    # --- Kafka topics ---
    topic_hits: str = "opens-hits"
    topic_shards: str = Field("opens-kinesis-shards", description="checkpoints + shard ownership")
    topic_first_opens: str = Field(
        "opens-first-opens", description="first open per (campaign, subscriber), for consumers"
    )
    topic_partitions: int = Field(4, ge=1, le=1024)
    app_id: str = Field("cloudfront-opens", description="Faust app id = Kafka consumer group")
    kafka_session_timeout: float = Field(
        30.0, ge=6, le=300, description="seconds before a silent worker's shards move elsewhere"
    )
    kafka_start_wait: float = Field(
        120.0, ge=0, description="seconds the worker waits at start for a broker to answer"
    )

    # --- Kinesis source ---
    kinesis_start: KinesisStart = "TRIM_HORIZON"
    kinesis_start_timestamp: datetime | None = Field(
        None,
        description="with OPENS_KINESIS_START=AT_TIMESTAMP: where new shards start reading",
    )
    kinesis_poll_interval: float = Field(
        0.5,
        gt=0,
        le=60,
        description="seconds between reads of a shard that is not behind (2 of its 5 reads/s)",
    )
    kinesis_refresh_seconds: float = Field(30.0, gt=0, description="shard list refresh period")

    # --- worker state (Faust tables) ---
    table_store: Literal["rocksdb://", "memory://"] = Field(
        "rocksdb://", description="dedupe state: RocksDB on disk (production) or memory (tests)"
    )
    dedupe_horizon_hours: float = Field(
        48.0, ge=48, le=24 * 90, description="event-time window in which a request id is recognised"
    )

    # --- ClickHouse sink ---
    sink_batch_size: int = Field(5000, ge=1)
    # 0.25 s: freshness (Kinesis put → ClickHouse) p95 stays under 2 s with the 0.5 s poll,
    # also right after a large backlog (scripts/bench_worker).
    sink_flush_seconds: float = Field(0.25, gt=0)

    # --- worker logs and web endpoints ---
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line")
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)

    # --- local development stack (opens stack ...) ---
    cache_dir: Path = Field(Path(".cache"), description="downloaded Kafka jars (git-ignored)")
    kafka_version: str = Field("4.1.1", pattern=r"^4\.\d+\.\d+$")
    stack_host: Literal["127.0.0.1"] = "127.0.0.1"
    stack_kafka_port: int = Field(19092, ge=1024, le=65535)
    stack_controller_port: int = Field(19093, ge=1024, le=65535)
    stack_moto_port: int = Field(15000, ge=1024, le=65535)
    stack_start_timeout: float = Field(90.0, gt=0)

    # --- machine-open classification (issue #17) ---
    lists_refresh_hours: float = Field(
        24.0, ge=0, description="how often the worker runs `opens data update` (0 = never)"
    )
    gateway_list_url: str = Field(
        "", description="a gateway network list (classifier's text format) data update fetches"
    )
    machine_timing_seconds: float = Field(
        2.0,
        ge=0,
        description="a person's hit this soon after the campaign's send is a probable machine",
    )

    # --- forgotten subscribers (opens forget; issue #14) ---
    suppression_refresh_seconds: float = Field(
        5.0, gt=0, description="how often the worker re-reads the suppression list"
    )
    forget_insert_timeout: float = Field(
        120.0, gt=0, description="opens forget: seconds to wait for inserts already running"
    )

    # --- pixel trust and event-time plausibility (issue #14, findings 6 and 7) ---
    require_signature: bool = Field(
        False, description="unsigned pixels count under invalid_hits, never as opens"
    )
    event_time_min: datetime = Field(
        datetime(2006, 1, 1, tzinfo=UTC),
        description="earliest plausible event time; an earlier line is a bad line",
    )
    event_time_max_ahead: float = Field(
        86_400.0,
        ge=0,
        description="seconds (or 90m, 24h, 1d) an event time may be past ingestion time",
    )

    @field_validator("event_time_min", mode="before")
    @classmethod
    def _event_min(cls, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return f"{value.strip()}T00:00:00Z"
        return value

    @field_validator("event_time_min")
    @classmethod
    def _event_min_utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("event_time_max_ahead", mode="before")
    @classmethod
    def _event_ahead(cls, value: Any) -> Any:
        if isinstance(value, str) and (
            m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)
        ):
            return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86_400}[m.group(2)]
        return value

    @field_validator("realtime_fields", mode="before")
    @classmethod
    def _fields(cls, value: Any) -> Any:
        value = _split_csv(value)
        try:
            return canonical_order(value)
        except UnknownFieldError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("query_allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> Any:
        return tuple(h.lower() for h in _split_csv(value))

    @field_validator("pixel_secrets", mode="before")
    @classmethod
    def _secrets(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("clickhouse_url", "clickhouse_reader_url")
    @classmethod
    def _ch_url(cls, value: str) -> str:
        if value and not re.match(r"^(chdb|https?|clickhouse)://", value):
            msg = "must start with chdb://, http:// or https://"
            raise ValueError(msg)
        return value

    # --- derived values ---
    @property
    def clickhouse_dsn(self) -> str:
        """The effective ClickHouse URL; defaults to embedded chDB under the data directory."""
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def stack_dir(self) -> Path:
        return self.data_dir / "stack"

    @property
    def web_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"

    @property
    def query_url(self) -> str:
        return f"http://{self.query_host}:{self.query_port}"

    @property
    def endpoint_file(self) -> Path:
        """Written by the process that owns the embedded ClickHouse and serves its endpoint."""
        return self.data_dir / "query-endpoint.json"

    def decode_context(self) -> DecodeContext:
        return DecodeContext(
            pixel_path=self.pixel_path,
            secrets=tuple(s.get_secret_value().encode() for s in self.pixel_secrets),
            ip_privacy=self.ip_privacy,
            data_dir=self.data_dir,
            require_signature=self.require_signature,
            event_time_min_ms=int(self.event_time_min.timestamp() * 1000),
            event_time_max_ahead_ms=int(self.event_time_max_ahead * 1000),
        )

    def redacted(self) -> dict[str, Any]:
        """Every setting, secrets masked: safe to log or print."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "pixel_secrets":
                value = ["***"] * len(value)
            elif name == "query_password":
                value = "***" if value.get_secret_value() else ""
            elif name in ("clickhouse_url", "clickhouse_reader_url"):
                value = mask_url(value)
            out[name] = str(value) if isinstance(value, Path) else value
        out["clickhouse_dsn"] = mask_url(self.clickhouse_dsn)
        return out

    def __repr_args__(self) -> Any:
        return self.redacted().items()


def _env_name(prefix: str, loc: tuple[int | str, ...]) -> str:
    return prefix + str(loc[0]).upper() if loc else prefix + "?"


def build_settings(cls: type[S], prefix: str, **overrides: Any) -> S:
    """Build a settings class once; a bad value raises ``ConfigError`` naming the variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = _env_name(prefix, err["loc"])
        line = f"{name}: {str(err['msg']).removeprefix('Value error, ')}"
        raise ConfigError(
            line, variable=name, hint="fix the environment variable or .env file"
        ) from None


def load_settings(**overrides: Any) -> Settings:
    """The pipeline's settings (``OPENS_*``)."""
    return build_settings(Settings, ENV_PREFIX, **overrides)
