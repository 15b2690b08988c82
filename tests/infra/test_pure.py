"""Pure parts: policy documents (exactly), settings, the GIF, config edits, the restore record."""

from __future__ import annotations

import copy
import struct

import pytest

from infra import policies
from infra.pixel import CACHE_CONTROL, PIXEL_GIF, pixel_etag
from infra.plan import Change, plan_json, summary
from infra.resources import distribution_config as dc
from infra.resources.attachment import Attachment
from infra.settings import load_infra_settings
from processor.errors import ConfigError

pytestmark = pytest.mark.unit

STREAM_ARN = "arn:aws:kinesis:eu-west-1:111122223333:stream/opens-pixel-hits"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_trust_policy_is_cloudfront_for_this_account_only() -> None:
    assert policies.trust_policy("111122223333") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": "111122223333"}},
            }
        ],
    }


def test_permissions_are_the_four_kinesis_actions_on_one_stream() -> None:
    assert policies.stream_write_policy(STREAM_ARN) == {
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
                "Resource": STREAM_ARN,
            }
        ],
    }


def test_a_customer_key_adds_generate_data_key_on_that_key_only() -> None:
    doc = policies.stream_write_policy(STREAM_ARN, KEY_ARN)
    assert doc["Statement"][1:] == [
        {
            "Sid": "EncryptWithStreamKey",
            "Effect": "Allow",
            "Action": "kms:GenerateDataKey",
            "Resource": KEY_ARN,
        }
    ]
    # No wildcard anywhere: every statement names one action set on one resource.
    for statement in doc["Statement"]:
        assert "*" not in str(statement["Resource"])
        assert all("*" not in a for a in [statement["Action"]] if isinstance(a, str))


def test_pixel_bucket_policy_lets_only_the_distribution_read_objects() -> None:
    arn = "arn:aws:cloudfront::111122223333:distribution/E123"
    assert policies.pixel_bucket_policy("opens-pixel", arn) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudFrontReadsPixel",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::opens-pixel/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": arn}},
            }
        ],
    }


def test_the_gif_is_the_43_byte_transparent_1x1_gif89a() -> None:
    assert len(PIXEL_GIF) == 43
    assert PIXEL_GIF[:6] == b"GIF89a"
    assert struct.unpack("<HH", PIXEL_GIF[6:10]) == (1, 1)
    assert PIXEL_GIF.endswith(b";")
    # GIF89a | 1x1, 2-colour table | black, white | graphic control: index 0 transparent |
    # image descriptor 1x1 | LZW min size 2, one 2-byte block, block end | trailer
    expected = (
        "474946383961 0100 0100 800000 000000 ffffff 21f90401000000 00 "
        "2c 0000 0000 0100 0100 00 02 02 4401 00 3b"
    )
    assert bytes.fromhex(expected) == PIXEL_GIF
    assert pixel_etag() == '"a5098c60b3b0c879a2c7af6c68b7b53f"'  # S3's ETag of that upload
    assert CACHE_CONTROL == "no-cache, no-store, must-revalidate"


def test_settings_defaults_and_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_infra_settings()
    assert (s.stream_mode, s.kinesis_key, s.attach) == ("on-demand", "alias/aws/kinesis", False)
    monkeypatch.setenv("OPENS_INFRA_SHARD_COUNT", "0")
    with pytest.raises(ConfigError) as err:
        load_infra_settings()
    assert err.value.variable == "OPENS_INFRA_SHARD_COUNT"
    assert err.value.message.startswith("OPENS_INFRA_SHARD_COUNT: ")
    monkeypatch.delenv("OPENS_INFRA_SHARD_COUNT")
    monkeypatch.setenv("OPENS_INFRA_PIXEL_BUCKET", "Not_A_Bucket")
    with pytest.raises(ConfigError) as err:
        load_infra_settings()
    assert err.value.variable == "OPENS_INFRA_PIXEL_BUCKET"
    monkeypatch.delenv("OPENS_INFRA_PIXEL_BUCKET")
    monkeypatch.setenv("OPENS_INFRA_DISTRIBUTION_ID", "E2SEEDDIST0001")
    assert load_infra_settings().attach is True


@pytest.mark.parametrize(
    "found",
    [
        Attachment(behavior_added=True, original_realtime_arn="", logging_added=True),
        Attachment(behavior_added=False, original_realtime_arn="", logging_added=False),
        Attachment(
            behavior_added=False,
            original_realtime_arn="arn:aws:cloudfront::111122223333:realtime-log-config/x-1",
            logging_added=True,
        ),
    ],
)
def test_attachment_record_round_trips_within_tag_charset(found: Attachment) -> None:
    import re

    value = found.encode()
    assert re.fullmatch(r"[\w\s.:/=+\-@]*", value) and len(value) <= 256
    assert Attachment.decode(value) == found


def _seed() -> dict[str, object]:
    return {
        "DefaultCacheBehavior": {"TargetOriginId": "seed", "ViewerProtocolPolicy": "allow-all"},
        "CacheBehaviors": {
            "Quantity": 1,
            "Items": [{"PathPattern": "img/*", "TargetOriginId": "seed"}],
        },
    }


def test_put_pixel_behavior_adds_a_copy_of_the_default_first() -> None:
    config = _seed()
    assert dc.put_pixel_behavior(config, "/o.gif", "arn:rt") == "added"
    assert config["CacheBehaviors"] == {
        "Quantity": 2,
        "Items": [
            {
                "TargetOriginId": "seed",
                "ViewerProtocolPolicy": "allow-all",
                "PathPattern": "/o.gif",
                "RealtimeLogConfigArn": "arn:rt",
            },
            {"PathPattern": "img/*", "TargetOriginId": "seed"},
        ],
    }
    dc.remove_behavior(config, "o.gif")  # with or without the leading slash
    assert config == _seed()


def test_put_pixel_behavior_changes_only_the_arn_of_an_existing_one() -> None:
    config = _seed()
    before = copy.deepcopy(config)
    assert dc.put_pixel_behavior(config, "img/*", "arn:rt") == "modified"
    items = config["CacheBehaviors"]["Items"]  # type: ignore[index]
    assert items == [
        {"PathPattern": "img/*", "TargetOriginId": "seed", "RealtimeLogConfigArn": "arn:rt"}
    ]
    assert config["DefaultCacheBehavior"] == before["DefaultCacheBehavior"]


def test_new_config_logs_the_pixel_path_only() -> None:
    config = dc.new_config(
        caller_reference="r",
        stack="s",
        origin=dc.s3_origin("opens-pixel", "eu-west-1", "OAC1"),
        pixel_path="/o.gif",
        realtime_arn="arn:rt",
        log=dc.logging("opens-logs", "cloudfront/"),
        price_class="PriceClass_100",
    )
    assert config["DefaultCacheBehavior"].get("RealtimeLogConfigArn") is None
    [pixel] = config["CacheBehaviors"]["Items"]
    assert (pixel["PathPattern"], pixel["RealtimeLogConfigArn"]) == ("/o.gif", "arn:rt")
    assert config["Origins"]["Items"][0]["DomainName"] == "opens-pixel.s3.eu-west-1.amazonaws.com"
    assert config["Origins"]["Items"][0]["OriginAccessControlId"] == "OAC1"
    assert config["Comment"] == "cloudfront-opens pixel (s)"


def test_plan_json_shape_and_summary() -> None:
    changes = [
        Change("log-bucket", "l", "create"),
        Change("iam-role", "r", "update", ("trust policy",)),
        Change("realtime-log-config", "c", "unsupported", ("CloudFront X",)),
    ]
    assert plan_json(changes) == [
        {"resource": "log-bucket", "name": "l", "action": "create"},
        {"resource": "iam-role", "name": "r", "action": "update"},
        {"resource": "realtime-log-config", "name": "c", "action": "unsupported"},
    ]
    assert summary(changes) == "1 to create, 1 to update, 1 unsupported by this endpoint"
    assert summary(changes, done=True) == "created 1, updated 1, 1 unsupported by this endpoint"
    assert summary([Change("x", "y", "none")]) == "nothing to do"
