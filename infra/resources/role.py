"""The IAM role CloudFront assumes to write real-time log records into the stream.

Trust: ``cloudfront.amazonaws.com`` with ``aws:SourceAccount`` = this account. Permissions: one
inline policy with the four Kinesis actions on the one stream (plus ``kms:GenerateDataKey`` on a
customer key). Any other inline or attached policy on the role is drift and is removed.
"""

from __future__ import annotations

import functools
import json
import urllib.parse
from typing import Any

from botocore.exceptions import ClientError

from infra import tags
from infra.aws import error_code
from infra.policies import stream_write_policy, trust_policy
from infra.resources.base import Fix, Resource

POLICY_NAME = "opens-write-realtime-log-stream"


def _document(value: Any) -> Any:
    """IAM returns policy documents URL-encoded; botocore usually decodes them already."""
    if isinstance(value, str):
        return json.loads(urllib.parse.unquote(value))
    return value


class Role(Resource):
    kind = "iam-role"
    variable = "OPENS_INFRA_ROLE_NAME"

    @property
    def name(self) -> str:
        return self.env.infra.role_name

    def trust(self) -> dict[str, Any]:
        return trust_policy(self.env.account_id)

    def permissions(self) -> dict[str, Any]:
        return stream_write_policy(self.env.stream_arn, self.env.infra.kms_key_arn)

    def _role(self) -> dict[str, Any] | None:
        try:
            role: dict[str, Any] = dict(self.env.clients.iam.get_role(RoleName=self.name)["Role"])
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise
        return role

    def read(self) -> bool:
        return self._role() is not None

    def create(self) -> None:
        self.env.clients.iam.create_role(
            RoleName=self.name,
            AssumeRolePolicyDocument=json.dumps(self.trust()),
            Description="CloudFront writes pixel real-time log records to one Kinesis stream",
            Tags=tags.as_list(tags.managed_tags(self.env.infra.stack)),
        )

    def _tags(self) -> dict[str, str]:
        out = self.env.clients.iam.list_role_tags(RoleName=self.name)
        return tags.from_list(out.get("Tags", []))

    def owned(self) -> bool:
        return tags.is_managed(self._tags(), self.env.infra.stack)

    def drift(self) -> list[Fix]:
        iam, name = self.env.clients.iam, self.name
        role = self._role() or {}
        fixes: list[Fix] = []
        wanted_tags = tags.managed_tags(self.env.infra.stack)
        if tags.missing(self._tags(), wanted_tags):
            fixes.append(
                Fix(
                    "tags",
                    lambda: iam.tag_role(RoleName=name, Tags=tags.as_list(wanted_tags)),
                )
            )
        trust = self.trust()
        if _document(role.get("AssumeRolePolicyDocument")) != trust:
            fixes.append(
                Fix(
                    "trust policy",
                    lambda: iam.update_assume_role_policy(
                        RoleName=name, PolicyDocument=json.dumps(trust)
                    ),
                )
            )
        inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
        permissions = self.permissions()
        current = (
            _document(iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME)["PolicyDocument"])
            if POLICY_NAME in inline
            else None
        )
        if current != permissions:
            fixes.append(
                Fix(
                    "stream write policy",
                    lambda: iam.put_role_policy(
                        RoleName=name,
                        PolicyName=POLICY_NAME,
                        PolicyDocument=json.dumps(permissions),
                    ),
                )
            )
        for extra in [p for p in inline if p != POLICY_NAME]:
            fixes.append(
                Fix(
                    f"extra inline policy {extra}",
                    functools.partial(iam.delete_role_policy, RoleName=name, PolicyName=extra),
                )
            )
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            arn = attached["PolicyArn"]
            fixes.append(
                Fix(
                    f"attached policy {attached.get('PolicyName', arn)}",
                    functools.partial(iam.detach_role_policy, RoleName=name, PolicyArn=arn),
                )
            )
        return fixes

    def delete(self) -> None:
        iam, name = self.env.clients.iam, self.name
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        iam.delete_role(RoleName=name)

    def describe(self) -> str:
        return f"{self.env.role_arn}: assumed by CloudFront, writes {self.env.stream_name} only"
