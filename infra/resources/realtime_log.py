"""The CloudFront real-time log configuration: every pixel request (sampling 100) into the
stream, with exactly the decoder's field list (``Settings.realtime_fields``, canonical order).

No API here takes tags, so ownership is proven by the endpoint: a configuration of this name that
writes to this stack's stream with this stack's role is ours. moto has no such API at all: a bare
404 raises ``MissingApi`` (``apply --allow-missing-apis`` goes on without it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from infra.aws import api_missing, error_code
from infra.errors import MissingApi
from infra.resources.base import Fix, Resource

SAMPLING_RATE = 100
_T = TypeVar("_T")
# IAM is eventually consistent: a just-created role can be refused for a few seconds.
_ROLE_NOT_READY = "InvalidArgument"
_IN_USE = "RealtimeLogConfigInUse"


class RealtimeLogConfig(Resource):
    kind = "realtime-log-config"
    variable = "OPENS_INFRA_REALTIME_LOG_CONFIG"

    @property
    def name(self) -> str:
        return self.env.infra.realtime_log_config

    def _call(self, api: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except ClientError as exc:
            if api_missing(exc):
                self.env.unsupported.add(self.kind)
                raise MissingApi(resource=self.kind, api=f"CloudFront {api}") from None
            raise

    def _current(self) -> dict[str, Any] | None:
        cloudfront = self.env.clients.cloudfront
        try:
            out = self._call(
                "GetRealtimeLogConfig", lambda: cloudfront.get_realtime_log_config(Name=self.name)
            )
        except ClientError as exc:
            if error_code(exc) == "NoSuchRealtimeLogConfig":
                return None
            raise
        config: dict[str, Any] = dict(out["RealtimeLogConfig"])
        self.env.realtime_arn = config.get("ARN") or None
        return config

    def read(self) -> bool:
        return self._current() is not None

    def endpoints(self) -> list[dict[str, Any]]:
        return [
            {
                "StreamType": "Kinesis",
                "KinesisStreamConfig": {
                    "RoleARN": self.env.role_arn,
                    "StreamARN": self.env.stream_arn,
                },
            }
        ]

    def request(self) -> dict[str, Any]:
        """The create/update parameters: the decoder's fields, in CloudFront's order."""
        return {
            "Name": self.name,
            "SamplingRate": SAMPLING_RATE,
            "Fields": list(self.env.realtime_fields),
            "EndPoints": self.endpoints(),
        }

    def create(self) -> None:
        cloudfront = self.env.clients.cloudfront

        def create() -> None:
            out = self._call(
                "CreateRealtimeLogConfig",
                lambda: cloudfront.create_realtime_log_config(**self.request()),
            )
            self.env.realtime_arn = out["RealtimeLogConfig"]["ARN"]

        self._retry_while(_ROLE_NOT_READY, create, "the role to become usable")

    def _retry_while(self, code: str, call: Callable[[], object], what: str) -> None:
        attempts = 0

        def done() -> bool:
            nonlocal attempts
            attempts += 1
            try:
                call()
            except ClientError as exc:
                if error_code(exc) != code or attempts >= 8:
                    raise
                return False
            return True

        self.env.wait_until(what, done, resource=self.kind)

    def drift(self) -> list[Fix]:
        current = self._current() or {}
        aspects = []
        if tuple(current.get("Fields", ())) != tuple(self.env.realtime_fields):
            aspects.append("fields")
        if current.get("SamplingRate") != SAMPLING_RATE:
            aspects.append("sampling rate")
        if _endpoints(current.get("EndPoints", [])) != _endpoints(self.endpoints()):
            aspects.append("stream endpoint")
        if not aspects:
            return []
        cloudfront = self.env.clients.cloudfront

        def update() -> None:
            self._call(
                "UpdateRealtimeLogConfig",
                lambda: cloudfront.update_realtime_log_config(**self.request()),
            )

        return [Fix(", ".join(aspects), update)]

    def owned(self) -> bool:
        current = self._current() or {}
        streams = {
            e.get("KinesisStreamConfig", {}).get("StreamARN") for e in current.get("EndPoints", [])
        }
        return streams == {self.env.stream_arn}

    def delete(self) -> None:
        cloudfront = self.env.clients.cloudfront
        # Still "in use" until the distribution that referenced it has deployed its change.
        self._retry_while(
            _IN_USE,
            lambda: self._call(
                "DeleteRealtimeLogConfig",
                lambda: cloudfront.delete_realtime_log_config(Name=self.name),
            ),
            "the configuration to be released by the distribution",
        )

    def describe(self) -> str:
        current = self._current() or {}
        return (
            f"sampling {current.get('SamplingRate', '?')} %, "
            f"{len(current.get('Fields', []))} fields → {self.env.stream_name}"
        )


def _endpoints(endpoints: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted(
        (
            str(e.get("StreamType")),
            str(e.get("KinesisStreamConfig", {}).get("RoleARN")),
            str(e.get("KinesisStreamConfig", {}).get("StreamARN")),
        )
        for e in endpoints
    )
