"""Attaching to a distribution that existed before (the seed's), and leaving it as found."""

from __future__ import annotations

import pytest

from infra import runner
from infra.aws import Clients
from infra.settings import load_infra_settings
from tests.conftest import unique
from tests.infra.conftest import MakeEnv, name_overrides

pytestmark = pytest.mark.integration


def seed_distribution(clients: Clients) -> str:
    """What the seed made by hand: a bucket origin, one default behaviour, no logging."""
    origin = unique("seed")
    out = clients.cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": unique("seed"),
            "Comment": "pixel (hand-made)",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": origin,
                        "DomainName": f"{origin}.s3.us-east-1.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": origin,
                "ViewerProtocolPolicy": "redirect-to-https",
                "ForwardedValues": {"QueryString": True, "Cookies": {"Forward": "none"}},
                "MinTTL": 0,
            },
        }
    )
    return out["Distribution"]["Id"]


def test_attach_turns_logging_on_and_destroy_turns_it_off_again(
    make_env: MakeEnv, clients: Clients
) -> None:
    dist_id = seed_distribution(clients)
    before = clients.cloudfront.get_distribution_config(Id=dist_id)["DistributionConfig"]
    assert before["Logging"]["Enabled"] is False
    infra = load_infra_settings(**name_overrides(), distribution_id=dist_id)

    planned = runner.plan(make_env(infra=infra))
    assert {c.resource: c.action for c in planned} == {
        "log-bucket": "create",
        "kinesis-stream": "create",
        "iam-role": "create",
        "realtime-log-config": "unsupported",
        "distribution": "update",
    }
    assert next(c for c in planned if c.resource == "distribution").details == ("standard logging",)
    env = make_env(infra=infra)
    applied = runner.apply(env)
    assert applied.base_url == f"https://{env.distribution_domain}"
    during = clients.cloudfront.get_distribution_config(Id=dist_id)["DistributionConfig"]
    assert during["Logging"] == {
        "Enabled": True,
        "IncludeCookies": False,
        "Bucket": f"{infra.log_bucket}.s3.amazonaws.com",
        "Prefix": "cloudfront/",
    }
    arn = clients.cloudfront.get_distribution(Id=dist_id)["Distribution"]["ARN"]
    tags = clients.cloudfront.list_tags_for_resource(Resource=arn)["Tags"].get("Items", [])
    assert tags == [{"Key": "opens:attached", "Value": "behavior=added logging=added"}]
    assert {c.action for c in runner.plan(make_env(infra=infra))} == {"none", "unsupported"}

    destroyed = {c.resource: c.action for c in runner.destroy(make_env(infra=infra))}
    assert destroyed["distribution"] == "update"
    assert destroyed["log-bucket"] == "delete"
    after = clients.cloudfront.get_distribution_config(Id=dist_id)["DistributionConfig"]
    assert after == before
    assert clients.cloudfront.list_tags_for_resource(Resource=arn)["Tags"].get("Items", []) == []
    # A second destroy finds nothing of ours and leaves the distribution alone.
    again = {c.resource: c.action for c in runner.destroy(make_env(infra=infra))}
    assert again["distribution"] == "none"
    assert clients.cloudfront.get_distribution(Id=dist_id)["Distribution"]["Id"] == dist_id


def test_attaching_to_a_missing_distribution_is_one_line(make_env: MakeEnv) -> None:
    from infra.errors import InfraError

    infra = load_infra_settings(**name_overrides(), distribution_id="E0000MISSING00")
    with pytest.raises(InfraError) as err:
        runner.plan(make_env(infra=infra))
    assert err.value.one_line() == (
        "distribution E0000MISSING00 to attach to does not exist "
        "(check OPENS_INFRA_DISTRIBUTION_ID, or unset it to create one)"
    )
