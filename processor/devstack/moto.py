"""moto in server mode on loopback: Kinesis, S3, IAM and CloudFront for local runs."""

from __future__ import annotations

import importlib.util
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from processor.devstack.process import ManagedProcess, port_is_free
from processor.errors import StackError

COMPONENT = "moto"


@dataclass(frozen=True)
class MotoServer:
    home: Path
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            COMPONENT, self.home / "moto.pid", marker=f"moto.server -H {self.host} -p {self.port}"
        )

    def start(self) -> int:
        if (pid := self.process.pid()) is not None:
            return pid
        if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
            msg = "moto's server mode is not installed"
            raise StackError(
                msg,
                component=COMPONENT,
                hint="pip install 'moto[server]' (make install does this)",
            )
        if not port_is_free(self.host, self.port):
            msg = f"port {self.port} on {self.host} is already in use"
            raise StackError(
                msg,
                component=COMPONENT,
                hint="stop what uses it or set OPENS_STACK_MOTO_PORT",
            )
        argv = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        return self.process.start(argv, log=self.home / "moto.log")

    def healthy(self) -> bool:
        try:
            url = f"{self.endpoint}/moto-api/"  # http on loopback, built here
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.exited_early():
                msg = "moto exited during start-up"
                raise StackError(
                    msg,
                    component=COMPONENT,
                    hint=f"see {self.home / 'moto.log'}",
                )
            if self.healthy():
                return
            time.sleep(0.2)
        msg = f"moto did not answer within {timeout:.0f}s"
        raise StackError(
            msg,
            component=COMPONENT,
            hint=f"see {self.home / 'moto.log'}",
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=10)
