"""`opens stack up|down|status|env`: the whole local stack as one object."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from processor.devstack.kafka import KafkaBroker, metadata_ok
from processor.devstack.moto import MotoServer
from processor.settings import Settings

# moto accepts any credentials; these keep boto3 from looking for real ones.
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    pid: int | None
    state: str  # running | healthy | stopped | embedded


@dataclass(frozen=True)
class LocalStack:
    settings: Settings

    @property
    def kafka(self) -> KafkaBroker:
        s = self.settings
        return KafkaBroker(
            home=s.stack_dir / "kafka",
            cache_dir=s.cache_dir,
            version=s.kafka_version,
            host=s.stack_host,
            port=s.stack_kafka_port,
            controller_port=s.stack_controller_port,
        )

    @property
    def moto(self) -> MotoServer:
        s = self.settings
        return MotoServer(home=s.stack_dir / "moto", host=s.stack_host, port=s.stack_moto_port)

    def up(self) -> list[ComponentStatus]:
        """Start what is not running and wait until each answers; harmless when already up."""
        kafka, moto = self.kafka, self.moto
        fresh = [c for c in (moto, kafka) if c.process.pid() is None]
        try:
            moto.start()
            kafka.start()
            timeout = self.settings.stack_start_timeout
            moto.wait_healthy(timeout)
            kafka.wait_healthy(timeout)
        except BaseException:
            for component in fresh:  # a failed `up` leaves nothing of its own running
                component.stop()
            raise
        return self.status()

    def down(self) -> list[str]:
        """Stop the processes this stack started (by PID); returns the names stopped."""
        stopped = []
        for name, component in (("kafka", self.kafka), ("moto", self.moto)):
            if component.stop():
                stopped.append(name)
        return stopped

    def status(self) -> list[ComponentStatus]:
        kafka, moto = self.kafka, self.moto
        kpid, mpid = kafka.process.pid(), moto.process.pid()
        kstate = "stopped"
        if kpid is not None:
            kstate = "healthy" if metadata_ok(kafka.bootstrap)[0] else "running"
        mstate = "stopped"
        if mpid is not None:
            mstate = "healthy" if moto.healthy() else "running"
        return [
            ComponentStatus("kafka", kafka.bootstrap, kpid, kstate),
            ComponentStatus("moto", moto.endpoint, mpid, mstate),
            ComponentStatus("clickhouse (chDB)", self.settings.clickhouse_dsn, None, "embedded"),
        ]

    def env(self) -> dict[str, str]:
        """Variables that point a shell or a subprocess at this stack."""
        return {
            "OPENS_KAFKA_BROKERS": self.kafka.bootstrap,
            "AWS_ENDPOINT_URL": self.moto.endpoint,
            **DUMMY_AWS,
            "OPENS_DATA_DIR": str(self.settings.data_dir.resolve()),
        }

    def export_lines(self) -> str:
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in self.env().items())
