"""The Kinesis data stream CloudFront writes real-time log records to: on-demand by default or
N provisioned shards, always encrypted (the AWS-managed key, or a customer key)."""

from __future__ import annotations

from typing import Any, Literal

from botocore.exceptions import ClientError

from infra import tags
from infra.aws import error_code
from infra.resources.base import Fix, Resource


class Stream(Resource):
    kind = "kinesis-stream"
    variable = "OPENS_KINESIS_STREAM"

    @property
    def name(self) -> str:
        return self.env.stream_name

    def _summary(self) -> dict[str, Any] | None:
        try:
            out = self.env.clients.kinesis.describe_stream_summary(StreamName=self.name)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise
        summary: dict[str, Any] = dict(out["StreamDescriptionSummary"])
        return summary

    def read(self) -> bool:
        summary = self._summary()
        return summary is not None and summary.get("StreamStatus") != "DELETING"

    @property
    def mode(self) -> Literal["ON_DEMAND", "PROVISIONED"]:
        return "ON_DEMAND" if self.env.infra.stream_mode == "on-demand" else "PROVISIONED"

    def create(self) -> None:
        kinesis = self.env.clients.kinesis
        kwargs: dict[str, Any] = {
            "StreamName": self.name,
            "StreamModeDetails": {"StreamMode": self.mode},
            "Tags": tags.managed_tags(self.env.infra.stack),
        }
        if self.mode == "PROVISIONED":
            kwargs["ShardCount"] = self.env.infra.shard_count
        kinesis.create_stream(**kwargs)
        self._wait_active()
        # Tags given to CreateStream are atomic on AWS; emulators may drop them, so set again.
        kinesis.add_tags_to_stream(
            StreamName=self.name, Tags=tags.managed_tags(self.env.infra.stack)
        )

    def _wait_active(self) -> None:
        def active() -> bool:
            summary = self._summary()
            return summary is not None and summary.get("StreamStatus") == "ACTIVE"

        self.env.wait_until(f"stream {self.name} to become ACTIVE", active, resource=self.kind)

    def _tags(self) -> dict[str, str]:
        out = self.env.clients.kinesis.list_tags_for_stream(StreamName=self.name)
        return tags.from_list(out.get("Tags", []))

    def owned(self) -> bool:
        return tags.is_managed(self._tags(), self.env.infra.stack)

    def drift(self) -> list[Fix]:
        kinesis, name = self.env.clients.kinesis, self.name
        summary = self._summary() or {}
        fixes: list[Fix] = []
        wanted_tags = tags.managed_tags(self.env.infra.stack)
        if tags.missing(self._tags(), wanted_tags):
            fixes.append(
                Fix("tags", lambda: kinesis.add_tags_to_stream(StreamName=name, Tags=wanted_tags))
            )
        if summary.get("StreamModeDetails", {}).get("StreamMode") != self.mode:

            def set_mode() -> None:
                self._wait_active()
                kinesis.update_stream_mode(
                    StreamARN=self.env.stream_arn,
                    StreamModeDetails={"StreamMode": self.mode},
                )
                self._wait_active()

            fixes.append(Fix("stream mode", set_mode))
        shards = self.env.infra.shard_count
        if self.mode == "PROVISIONED" and summary.get("OpenShardCount") != shards:

            def set_shards() -> None:
                self._wait_active()
                kinesis.update_shard_count(
                    StreamName=name, TargetShardCount=shards, ScalingType="UNIFORM_SCALING"
                )
                self._wait_active()

            fixes.append(Fix("shard count", set_shards))
        key = self.env.infra.kinesis_key
        if summary.get("EncryptionType") != "KMS" or summary.get("KeyId") != key:

            def encrypt() -> None:
                self._wait_active()
                kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=key)
                self._wait_active()

            fixes.append(Fix("encryption", encrypt))
        return fixes

    def delete(self) -> None:
        self.env.clients.kinesis.delete_stream(StreamName=self.name, EnforceConsumerDeletion=True)

    def describe(self) -> str:
        s = self._summary() or {}
        mode = s.get("StreamModeDetails", {}).get("StreamMode", "?")
        return (
            f"{s.get('StreamStatus', '?')}, {mode}, {s.get('OpenShardCount', '?')} shard(s), "
            f"encryption {s.get('EncryptionType', '?')}"
        )
