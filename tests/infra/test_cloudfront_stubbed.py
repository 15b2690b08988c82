"""The CloudFront calls moto lacks, checked with botocore's ``Stubber``: it validates every
request and response against the AWS model, and ``expected_params`` are compared exactly."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from infra import runner
from infra.errors import MissingApi
from infra.resources.distribution import Distribution
from infra.resources.realtime_log import RealtimeLogConfig
from infra.settings import load_infra_settings
from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.settings import load_settings
from tests.infra import stubs

pytestmark = pytest.mark.unit


def test_realtime_config_carries_the_decoders_fields_and_the_update_attaches_it() -> None:
    """The seed's situation: attach to an existing distribution by id."""
    clients = stubs.clients()
    env = stubs.env(load_infra_settings(distribution_id=stubs.SEED_ID), clients)
    seed = stubs.seed_config()
    cf = Stubber(clients.cloudfront)

    # 1. real-time log config: absent, created with exactly the decoder's fields, sampling 100
    name = {"Name": "opens-pixel-realtime"}
    cf.add_client_error(
        "get_realtime_log_config",
        "NoSuchRealtimeLogConfig",
        http_status_code=404,
        expected_params=name,
    )
    cf.add_response(
        "create_realtime_log_config",
        {"RealtimeLogConfig": stubs.realtime_config()},
        expected_params={
            "Name": "opens-pixel-realtime",
            "SamplingRate": 100,
            "Fields": list(load_settings().realtime_fields),
            "EndPoints": [
                {
                    "StreamType": "Kinesis",
                    "KinesisStreamConfig": {
                        "RoleARN": stubs.ROLE_ARN,
                        "StreamARN": stubs.STREAM_ARN,
                    },
                }
            ],
        },
    )
    cf.add_response("get_realtime_log_config", {"RealtimeLogConfig": stubs.realtime_config()}, name)

    # 2. the distribution: read, found without a pixel behaviour; record, then update
    dist_id = {"Id": stubs.SEED_ID}
    tags_of = {"Resource": stubs.SEED_ARN}
    cf.add_response("get_distribution", stubs.distribution(seed), dist_id)
    cf.add_response("list_tags_for_resource", {"Tags": {"Items": []}}, tags_of)  # not ours
    cf.add_response("get_distribution_config", {"DistributionConfig": seed, "ETag": "E1"}, dist_id)
    cf.add_response("list_tags_for_resource", {"Tags": {"Items": []}}, tags_of)
    cf.add_response("get_distribution_config", {"DistributionConfig": seed, "ETag": "E1"}, dist_id)
    cf.add_response(
        "tag_resource",
        {},
        {
            "Resource": stubs.SEED_ARN,
            "Tags": {"Items": [{"Key": "opens:attached", "Value": "behavior=added logging=added"}]},
        },
    )
    cf.add_response("get_distribution_config", {"DistributionConfig": seed, "ETag": "E2"}, dist_id)
    wanted = copy.deepcopy(seed)
    wanted["CacheBehaviors"] = {
        "Quantity": 1,
        "Items": [
            {
                "PathPattern": "/o.gif",
                "TargetOriginId": "seed-bucket",
                "ViewerProtocolPolicy": "redirect-to-https",
                "CachePolicyId": stubs.CACHING_OPTIMIZED,
                "Compress": True,
                "RealtimeLogConfigArn": stubs.RTLOG_ARN,
            }
        ],
    }
    wanted["Logging"] = {
        "Enabled": True,
        "IncludeCookies": False,
        "Bucket": "opens-logs.s3.amazonaws.com",
        "Prefix": "cloudfront/",
    }
    cf.add_response(
        "update_distribution",
        stubs.distribution(wanted, status="InProgress"),
        {"Id": stubs.SEED_ID, "IfMatch": "E2", "DistributionConfig": wanted},
    )

    with cf:
        rt = runner.ensure(RealtimeLogConfig(env))
        dist = runner.ensure(Distribution(env))
        cf.assert_no_pending_responses()
    assert (rt.action, dist.action) == ("create", "update")
    assert dist.details == ("pixel behaviour real-time logs, standard logging",)
    assert seed["CacheBehaviors"] == {"Quantity": 0}  # the fixture itself was not edited


def test_the_field_list_is_the_settings_list_in_canonical_order() -> None:
    fields = load_settings(realtime_fields="asn,timestamp,cs-uri-query,x-edge-request-id")
    clients = stubs.clients()
    env = stubs.env(load_infra_settings(), clients)
    env.realtime_fields = fields.realtime_fields
    assert RealtimeLogConfig(env).request()["Fields"] == [
        "timestamp",
        "x-edge-request-id",
        "cs-uri-query",
        "asn",
    ]
    assert RealtimeLogConfig(stubs.env(load_infra_settings(), clients)).request()["Fields"] == (
        list(DEFAULT_REALTIME_FIELDS)
    )


def test_changed_fields_update_the_config() -> None:
    clients = stubs.clients()
    env = stubs.env(load_infra_settings(), clients)
    cf = Stubber(clients.cloudfront)
    old = stubs.realtime_config(fields=["timestamp", "c-ip"])
    name = {"Name": "opens-pixel-realtime"}
    cf.add_response("get_realtime_log_config", {"RealtimeLogConfig": old}, name)
    cf.add_response("get_realtime_log_config", {"RealtimeLogConfig": old}, name)  # owned?
    cf.add_response("get_realtime_log_config", {"RealtimeLogConfig": old}, name)  # drift
    request = RealtimeLogConfig(env).request()
    cf.add_response(
        "update_realtime_log_config", {"RealtimeLogConfig": stubs.realtime_config()}, request
    )
    with cf:
        change = runner.ensure(RealtimeLogConfig(env))
        cf.assert_no_pending_responses()
    assert (change.action, change.details) == ("update", ("fields",))


@pytest.mark.parametrize(("code", "missing"), [("404", True), ("NoSuchRealtimeLogConfig", False)])
def test_a_bare_404_means_the_api_is_missing(code: str, missing: bool) -> None:
    clients = stubs.clients()
    env = stubs.env(load_infra_settings(), clients)
    cf = Stubber(clients.cloudfront)
    cf.add_client_error("get_realtime_log_config", code, "Not Found", http_status_code=404)
    with cf:
        if missing:
            with pytest.raises(MissingApi) as err:
                RealtimeLogConfig(env).read()
            assert err.value.one_line() == (
                "the AWS endpoint does not implement CloudFront GetRealtimeLogConfig "
                "(apply --allow-missing-apis provisions everything else)"
            )
            assert "realtime-log-config" in env.unsupported
            assert env.realtime_log_config_arn is None
        else:
            assert RealtimeLogConfig(env).read() is False
            assert env.realtime_log_config_arn == stubs.RTLOG_ARN


def test_update_rereads_the_etag_when_it_moved() -> None:
    clients = stubs.clients()
    env = stubs.env(load_infra_settings(distribution_id=stubs.SEED_ID), clients)
    env.distribution_id, env.distribution_arn = stubs.SEED_ID, stubs.SEED_ARN
    seed = stubs.seed_config()
    off = copy.deepcopy(seed) | {"Enabled": False}
    cf = Stubber(clients.cloudfront)
    dist_id = {"Id": stubs.SEED_ID}
    cf.add_response("get_distribution_config", {"DistributionConfig": seed, "ETag": "E1"}, dist_id)
    cf.add_client_error(
        "update_distribution",
        "PreconditionFailed",
        http_status_code=412,
        expected_params={"Id": stubs.SEED_ID, "IfMatch": "E1", "DistributionConfig": off},
    )
    cf.add_response("get_distribution_config", {"DistributionConfig": seed, "ETag": "E9"}, dist_id)
    cf.add_response(
        "update_distribution",
        stubs.distribution(off),
        {"Id": stubs.SEED_ID, "IfMatch": "E9", "DistributionConfig": off},
    )
    with cf:
        Distribution(env)._update(lambda c: c.__setitem__("Enabled", False))
        cf.assert_no_pending_responses()


def test_destroy_puts_an_attached_distribution_back_as_found() -> None:
    clients = stubs.clients()
    env = stubs.env(load_infra_settings(distribution_id=stubs.SEED_ID), clients)
    env.distribution_id, env.distribution_arn = stubs.SEED_ID, stubs.SEED_ARN
    seed = stubs.seed_config()
    attached = copy.deepcopy(seed)
    attached["CacheBehaviors"] = {
        "Quantity": 1,
        "Items": [
            {
                "PathPattern": "/o.gif",
                "TargetOriginId": "seed-bucket",
                "ViewerProtocolPolicy": "redirect-to-https",
                "CachePolicyId": stubs.CACHING_OPTIMIZED,
                "RealtimeLogConfigArn": stubs.RTLOG_ARN,
            }
        ],
    }
    attached["Logging"] = {
        "Enabled": True,
        "IncludeCookies": False,
        "Bucket": "x.s3.amazonaws.com",
        "Prefix": "p/",
    }
    record = {"Key": "opens:attached", "Value": "behavior=added logging=added"}
    cf = Stubber(clients.cloudfront)
    dist_id, tags_of = {"Id": stubs.SEED_ID}, {"Resource": stubs.SEED_ARN}
    cf.add_response("list_tags_for_resource", {"Tags": {"Items": [record]}}, tags_of)
    cf.add_response(
        "get_distribution_config", {"DistributionConfig": attached, "ETag": "E5"}, dist_id
    )
    restored = copy.deepcopy(seed)
    cf.add_response(
        "update_distribution",
        stubs.distribution(restored, status="InProgress"),
        {"Id": stubs.SEED_ID, "IfMatch": "E5", "DistributionConfig": restored},
    )
    cf.add_response("get_distribution", stubs.distribution(restored, "InProgress"), dist_id)
    cf.add_response("get_distribution", stubs.distribution(restored, "Deployed"), dist_id)
    cf.add_response(
        "untag_resource", {}, {"Resource": stubs.SEED_ARN, "TagKeys": {"Items": ["opens:attached"]}}
    )
    with cf:
        assert Distribution(env).release() is True
        cf.assert_no_pending_responses()


def test_status_reports_incoming_records() -> None:
    clients = stubs.clients()
    env = stubs.env(load_infra_settings(), clients)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    cw = Stubber(clients.cloudwatch)
    params: dict[str, Any] = {
        "Namespace": "AWS/Kinesis",
        "MetricName": "IncomingRecords",
        "Dimensions": [{"Name": "StreamName", "Value": stubs.STREAM}],
        "StartTime": datetime(2026, 3, 1, 11, 45, tzinfo=UTC),
        "EndTime": now,
        "Period": 60,
        "Statistics": ["Sum"],
    }
    cw.add_response(
        "get_metric_statistics",
        {"Label": "IncomingRecords", "Datapoints": [{"Sum": 40.0}, {"Sum": 2.0}]},
        params,
    )
    cw.add_response("get_metric_statistics", {"Label": "IncomingRecords", "Datapoints": []}, params)
    cw.add_client_error("get_metric_statistics", "AccessDenied", http_status_code=403)
    with cw:
        assert runner.records_flowing(env, now) == "flowing: 42 records in the last 15 min"
        assert runner.records_flowing(env, now) == "no records in the last 15 min"
        assert runner.records_flowing(env, now) == "unknown (CloudWatch: AccessDenied)"


def test_a_created_distribution_logs_the_pixel_behaviour_in_real_time() -> None:
    from botocore.stub import ANY

    from infra.resources import distribution_config as dc

    clients = stubs.clients()
    env = stubs.env(load_infra_settings(stack="demo"), clients)
    env.oac_id = "E3OAC"
    config = dc.new_config(
        caller_reference=ANY,  # type: ignore[arg-type]  # Stubber's wildcard
        stack="demo",
        origin=dc.s3_origin("opens-pixel", "us-east-1", "E3OAC"),
        pixel_path="/o.gif",
        realtime_arn=stubs.RTLOG_ARN,
        log=dc.logging("opens-logs", "cloudfront/"),
        price_class="PriceClass_100",
    )
    pixel = config["CacheBehaviors"]["Items"][0]
    assert (pixel["PathPattern"], pixel["RealtimeLogConfigArn"]) == ("/o.gif", stubs.RTLOG_ARN)
    assert pixel["TargetOriginId"] == config["Origins"]["Items"][0]["Id"]
    created = copy.deepcopy(config) | {"CallerReference": "opens-demo-1"}
    cf = Stubber(clients.cloudfront)
    cf.add_response(
        "list_distributions",
        {"DistributionList": {"Marker": "", "MaxItems": 100, "IsTruncated": False, "Quantity": 0}},
        {},
    )
    cf.add_response(
        "create_distribution_with_tags",
        {**stubs.distribution(created, "InProgress"), "Location": "https://x"},
        {
            "DistributionConfigWithTags": {
                "DistributionConfig": config,
                "Tags": {
                    "Items": [
                        {"Key": "opens:managed", "Value": "true"},
                        {"Key": "opens:stack", "Value": "demo"},
                    ]
                },
            }
        },
    )
    cf.add_response(
        "get_distribution_config",
        {"DistributionConfig": created, "ETag": "E1"},
        {"Id": stubs.SEED_ID},
    )
    with cf:
        change = runner.ensure(Distribution(env))
        cf.assert_no_pending_responses()
    assert (change.action, change.details) == ("create", ())
    assert env.distribution_domain == "d111111abcdef8.cloudfront.net"
