"""plan → apply → plan → destroy against a fresh moto server (S3, IAM, Kinesis, CloudFront CRUD).

moto has no real-time log configs: they show as ``unsupported`` and apply needs
``allow_missing_apis``; everything else must be created, found unchanged, and removed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra import runner
from infra.aws import Clients
from infra.errors import AwsCallFailed, MissingApi, NotManaged
from infra.pixel import CACHE_CONTROL, PIXEL_GIF
from infra.plan import Change
from infra.resources.base import Env
from tests.infra.conftest import MakeEnv

pytestmark = pytest.mark.integration

KINDS = [
    "log-bucket",
    "pixel-bucket",
    "kinesis-stream",
    "iam-role",
    "realtime-log-config",
    "origin-access-control",
    "distribution",
    "pixel-bucket-policy",
]


def actions(changes: list[Change]) -> dict[str, str]:
    return {c.resource: c.action for c in changes}


def leftovers(env: Env) -> list[str]:
    """Everything of this stack still in the account, looked up directly."""
    c, infra, found = env.clients, env.infra, []
    buckets = {b["Name"] for b in c.s3.list_buckets().get("Buckets", [])}
    found += sorted(buckets & {infra.pixel_bucket, infra.log_bucket})
    if env.stream_name in c.kinesis.list_streams()["StreamNames"]:
        found.append(env.stream_name)
    roles = {r["RoleName"] for r in c.iam.list_roles()["Roles"]}
    found += [infra.role_name] if infra.role_name in roles else []
    oacs = c.cloudfront.list_origin_access_controls()["OriginAccessControlList"]
    found += [o["Name"] for o in oacs.get("Items", []) if o["Name"] == infra.origin_access_control]
    dists = c.cloudfront.list_distributions()["DistributionList"].get("Items", [])
    found += [d["Id"] for d in dists if d["Comment"] == f"cloudfront-opens pixel ({infra.stack})"]
    return found


def test_plan_apply_replan_destroy_on_fresh_moto(make_env: MakeEnv) -> None:
    env = make_env()
    planned = runner.plan(env)
    assert [c.resource for c in planned] == KINDS
    assert actions(planned) == {
        **dict.fromkeys(KINDS, "create"),
        "realtime-log-config": "unsupported",
    }
    assert leftovers(env) == []  # plan changed nothing

    applied = runner.apply(make_env(), planned=planned)
    assert actions(applied.changes) == actions(planned)
    assert applied.stream == env.stream_name
    assert applied.base_url is not None and applied.base_url.startswith("https://")
    assert applied.base_url.endswith(".cloudfront.net")

    again = make_env()
    assert actions(runner.plan(again)) == {
        **dict.fromkeys(KINDS, "none"),
        "realtime-log-config": "unsupported",
    }
    second = runner.apply(make_env())
    assert {c.action for c in second.changes} == {"none", "unsupported"}

    gone = make_env()
    destroyed = runner.destroy(gone)
    assert [c.resource for c in destroyed] == list(reversed(KINDS))
    assert actions(destroyed) == {
        **dict.fromkeys(KINDS, "delete"),
        "realtime-log-config": "unsupported",
    }
    assert leftovers(gone) == []
    assert actions(runner.plan(make_env())) == actions(planned)


def test_apply_without_allow_missing_apis_changes_nothing(make_env: MakeEnv) -> None:
    env = make_env(allow_missing_apis=False)
    with pytest.raises(MissingApi) as err:
        runner.apply(env)
    assert err.value.api == "CloudFront GetRealtimeLogConfig"
    assert "--allow-missing-apis" in err.value.one_line()
    assert leftovers(env) == []


def test_resources_are_configured_as_specified(make_env: MakeEnv) -> None:
    env = make_env()
    runner.apply(env)
    s3, infra = env.clients.s3, env.infra
    gif = s3.get_object(Bucket=infra.pixel_bucket, Key="o.gif")
    assert gif["Body"].read() == PIXEL_GIF
    assert gif["CacheControl"] == CACHE_CONTROL == "no-cache, no-store, must-revalidate"
    assert gif["ContentType"] == "image/gif"
    for bucket in (infra.pixel_bucket, infra.log_bucket):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
    assert s3.get_bucket_ownership_controls(Bucket=infra.pixel_bucket)["OwnershipControls"][
        "Rules"
    ] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert s3.get_bucket_ownership_controls(Bucket=infra.log_bucket)["OwnershipControls"][
        "Rules"
    ] == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    grants = s3.get_bucket_acl(Bucket=infra.log_bucket)["Grants"]
    assert {
        "Grantee": {
            "ID": "c4c1ede66af53448b93c283ce9448c4ba468c9432aa01d700d3878632f77d2d0",
            "Type": "CanonicalUser",
        },
        "Permission": "FULL_CONTROL",
    } in grants
    rules = s3.get_bucket_lifecycle_configuration(Bucket=infra.log_bucket)["Rules"]
    assert [(r["Expiration"]["Days"], r["Filter"]["Prefix"]) for r in rules] == [
        (90, "cloudfront/")
    ]
    policy = json.loads(s3.get_bucket_policy(Bucket=infra.pixel_bucket)["Policy"])
    assert policy["Statement"][0]["Condition"]["StringEquals"]["AWS:SourceArn"] == (
        env.distribution_arn
    )

    summary = env.clients.kinesis.describe_stream_summary(StreamName=env.stream_name)[
        "StreamDescriptionSummary"
    ]
    assert summary["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
    assert (summary["EncryptionType"], summary.get("KeyId")) == ("KMS", "alias/aws/kinesis")

    config = env.clients.cloudfront.get_distribution_config(Id=str(env.distribution_id))[
        "DistributionConfig"
    ]
    assert config["Logging"] == {
        "Enabled": True,
        "IncludeCookies": False,
        "Bucket": f"{infra.log_bucket}.s3.amazonaws.com",
        "Prefix": "cloudfront/",
    }
    assert [b["PathPattern"] for b in config["CacheBehaviors"]["Items"]] == ["/o.gif"]


def test_role_allows_only_writing_to_the_one_stream(make_env: MakeEnv) -> None:
    env = make_env()
    runner.apply(env)
    iam, role = env.clients.iam, env.infra.role_name
    assert iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
            }
        ],
    }
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == [
        "opens-write-realtime-log-stream"
    ]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    document = iam.get_role_policy(RoleName=role, PolicyName="opens-write-realtime-log-stream")
    assert document["PolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteRealtimeLogRecords",
                "Effect": "Allow",
                "Action": [
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:PutRecord",
                    "kinesis:PutRecords",
                ],
                "Resource": f"arn:aws:kinesis:us-east-1:123456789012:stream/{env.stream_name}",
            }
        ],
    }


def test_drift_is_reported_and_repaired(make_env: MakeEnv) -> None:
    env = make_env()
    runner.apply(env)
    c, infra = env.clients, env.infra
    c.s3.delete_bucket_lifecycle(Bucket=infra.log_bucket)
    c.s3.put_object(Bucket=infra.pixel_bucket, Key="o.gif", Body=b"not a gif")
    c.iam.put_role_policy(
        RoleName=infra.role_name,
        PolicyName="too-much",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}],
            }
        ),
    )
    changes = {c.resource: c for c in runner.plan(make_env())}
    assert changes["log-bucket"].details == ("lifecycle rule",)
    assert changes["pixel-bucket"].details == ("object o.gif",)
    assert changes["iam-role"].details == ("extra inline policy too-much",)
    assert changes["kinesis-stream"].action == "none"

    runner.apply(make_env())
    assert {c.action for c in runner.plan(make_env())} == {"none", "unsupported"}
    assert c.iam.list_role_policies(RoleName=infra.role_name)["PolicyNames"] == [
        "opens-write-realtime-log-stream"
    ]


def _refuse(operation: str, code: str) -> Any:
    """A botocore ``before-call`` hook: the call is answered with an AWS error, not sent."""

    def handler(**_: Any) -> tuple[Any, dict[str, Any]]:
        class Http:
            status_code = 400
            headers: dict[str, str] = {}  # noqa: RUF012

        return Http(), {
            "Error": {"Code": code, "Message": f"{operation} refused by the test"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    return handler


def test_failure_half_way_is_completed_by_the_next_apply(make_env: MakeEnv) -> None:
    env = make_env()
    env.clients.kinesis.meta.events.register(
        "before-call.kinesis.CreateStream", _refuse("CreateStream", "LimitExceededException")
    )
    with pytest.raises(AwsCallFailed) as err:
        runner.apply(env)
    assert (err.value.resource, err.value.code) == ("kinesis-stream", "LimitExceededException")
    assert "kinesis-stream" in err.value.one_line()
    assert sorted(leftovers(env)) == sorted([env.infra.pixel_bucket, env.infra.log_bucket])

    resumed = runner.apply(make_env())
    assert actions(resumed.changes) == {
        "log-bucket": "none",
        "pixel-bucket": "none",
        "kinesis-stream": "create",
        "iam-role": "create",
        "realtime-log-config": "unsupported",
        "origin-access-control": "create",
        "distribution": "create",
        "pixel-bucket-policy": "create",
    }
    assert {c.action for c in runner.plan(make_env())} == {"none", "unsupported"}
    runner.destroy(make_env())
    assert leftovers(make_env()) == []


def test_a_resource_of_ours_by_name_but_not_by_tag_is_refused(
    make_env: MakeEnv, clients: Clients
) -> None:
    env = make_env()
    clients.s3.create_bucket(Bucket=env.infra.log_bucket)  # someone else's bucket
    with pytest.raises(NotManaged) as err:
        runner.plan(env)
    assert (err.value.resource, err.value.name) == ("log-bucket", env.infra.log_bucket)
    assert "OPENS_INFRA_LOG_BUCKET" in err.value.one_line()
    with pytest.raises(NotManaged):
        runner.apply(make_env())
    # destroy leaves it alone
    assert actions(runner.destroy(make_env()))["log-bucket"] == "none"
    clients.s3.head_bucket(Bucket=env.infra.log_bucket)


def test_provisioned_stream_and_customer_key(make_env: MakeEnv) -> None:
    from infra.settings import load_infra_settings
    from tests.infra.conftest import name_overrides

    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    infra = load_infra_settings(
        **name_overrides(), stream_mode="provisioned", shard_count=2, kms_key_arn=key
    )
    env = make_env(infra=infra)
    runner.apply(env)
    summary = env.clients.kinesis.describe_stream_summary(StreamName=env.stream_name)[
        "StreamDescriptionSummary"
    ]
    assert summary["StreamModeDetails"]["StreamMode"] == "PROVISIONED"
    assert summary["OpenShardCount"] == 2
    assert summary.get("KeyId") == key
    # botocore decodes IAM policy documents to dicts; the stubs still say str
    document: Any = env.clients.iam.get_role_policy(
        RoleName=infra.role_name, PolicyName="opens-write-realtime-log-stream"
    )["PolicyDocument"]
    statements = document["Statement"]
    assert statements[1] == {
        "Sid": "EncryptWithStreamKey",
        "Effect": "Allow",
        "Action": "kms:GenerateDataKey",
        "Resource": key,
    }
    assert {c.action for c in runner.plan(make_env(infra=infra))} == {"none", "unsupported"}
    runner.destroy(make_env(infra=infra))
    with pytest.raises(ClientError):
        env.clients.kinesis.describe_stream_summary(StreamName=env.stream_name)
