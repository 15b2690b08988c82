"""A single-node Apache Kafka 4.x broker (KRaft) assembled from Maven Central jars."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from processor.devstack.process import ManagedProcess, port_is_free
from processor.errors import StackError

COMPONENT = "kafka"
MAIN_CLASS = "kafka.Kafka"


def _java_major() -> int:
    java = shutil.which("java")
    if java is None:
        msg = "Java not found"
        raise StackError(
            msg,
            component=COMPONENT,
            hint="install a JDK 17+ (apt-get install openjdk-17-jre-headless)",
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        msg = "could not read the Java version"
        raise StackError(msg, component=COMPONENT)
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def ensure_jars(cache_dir: Path, version: str) -> Path:
    """Return the folder of broker jars, fetching them with Maven once (offline afterwards)."""
    home = (cache_dir / f"kafka-{version}").resolve()
    lib = home / "lib"
    if (lib / f"kafka_2.13-{version}.jar").exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        msg = "Maven (mvn) not found; it fetches the Kafka jars once"
        raise StackError(
            msg,
            component=COMPONENT,
            hint="install Maven (apt-get install maven)",
        )
    home.mkdir(parents=True, exist_ok=True)
    pom = home / "pom.xml"
    pom.write_bytes(resources.files("processor.devstack").joinpath("kafka-pom.xml").read_bytes())
    staging = home / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    proc = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "package",
            f"-Dkafka.version={version}",
            f"-Dlib.dir={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=home,
    )
    if proc.returncode != 0 or not (staging / f"kafka_2.13-{version}.jar").exists():
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        msg = f"Maven could not fetch Kafka {version}: {tail or 'no output'}"
        raise StackError(
            msg,
            component=COMPONENT,
            hint="check that Maven Central is reachable",
        )
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)  # atomic: a half-fetched folder is never mistaken for a cache hit
    shutil.rmtree(home / "target", ignore_errors=True)
    return lib


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


SERVER_PROPERTIES = """\
# Written by `opens stack up`: one combined broker+controller on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


@dataclass(frozen=True)
class KafkaBroker:
    """One broker's files under ``home`` and its ports on loopback."""

    home: Path
    cache_dir: Path
    version: str
    host: str
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(COMPONENT, self.home / "kafka.pid", marker=str(self.home.resolve()))

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "server.log"

    def start(self) -> int:
        """Start the broker (formatting storage the first time); returns its PID."""
        if (pid := self.process.pid()) is not None:
            return pid
        if _java_major() < 17:
            msg = "Kafka 4 needs Java 17 or newer"
            raise StackError(msg, component=COMPONENT, hint="install openjdk-17")
        for port in (self.port, self.controller_port):
            if not port_is_free(self.host, port):
                msg = f"port {port} on {self.host} is already in use"
                raise StackError(
                    msg,
                    component=COMPONENT,
                    hint="stop what uses it, or set OPENS_STACK_KAFKA_PORT and "
                    "OPENS_STACK_CONTROLLER_PORT",
                )
        lib = ensure_jars(self.cache_dir, self.version)
        home = self.home.resolve()
        data = home / "data"
        logs = home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        props = home / "server.properties"
        props.write_text(
            SERVER_PROPERTIES.format(
                host=self.host, port=self.port, controller_port=self.controller_port, data=data
            )
        )
        log4j = home / "log4j2.properties"
        log4j.write_bytes(
            resources.files("processor.devstack").joinpath("log4j2.properties").read_bytes()
        )
        java = shutil.which("java") or "java"
        jvm = [
            java,
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile=file:{log4j}",
            f"-Dkafka.logs.dir={logs}",
            "-cp",
            f"{lib}/*",
        ]
        if not (data / "meta.properties").exists():
            shutil.rmtree(data, ignore_errors=True)
            fmt = subprocess.run(
                # `--cluster-id=`: a random id may start with "-" and read as an option.
                [
                    *jvm,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={_cluster_id()}",
                    "-c",
                    str(props),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                msg = f"formatting Kafka storage failed: {fmt.stderr.strip()[-300:]}"
                raise StackError(
                    msg,
                    component=COMPONENT,
                )
        # The home path in argv is the marker that identifies this broker's process.
        return self.process.start([*jvm, MAIN_CLASS, str(props)], log=logs / "stdout.log", cwd=home)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.exited_early():
                msg = "the Kafka broker exited during start-up"
                raise StackError(
                    msg,
                    component=COMPONENT,
                    hint=f"see {self.home / 'logs'}",
                )
            ok, last = metadata_ok(self.bootstrap)
            if ok:
                return
            time.sleep(0.5)
        msg = f"Kafka did not answer a metadata request within {timeout:.0f}s ({last})"
        raise StackError(
            msg,
            component=COMPONENT,
            hint=f"see {self.home / 'logs'}",
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=30)


def metadata_ok(bootstrap: str, timeout: float = 3.0) -> tuple[bool, str]:
    """Health = a metadata request answered by the broker."""

    async def probe() -> int:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), timeout)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
            return len(cluster["brokers"])
        finally:
            await admin.close()

    # aiokafka logs every refused connection; while polling for start-up that is just noise.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        n = asyncio.run(probe())
    except Exception as exc:  # any failure just means "not healthy yet"
        return False, type(exc).__name__
    finally:
        quiet.setLevel(level)
    return n > 0, f"{n} broker(s)"
