"""The CloudFront distribution: created by apply, or an existing one attached by id.

Created: the pixel bucket as origin (origin access control), the pixel path's behaviour with the
real-time log config, standard logging into the log bucket; tagged, found again by its comment.
Attached (``OPENS_INFRA_DISTRIBUTION_ID``, the seed's situation): only the pixel path's behaviour
gets the real-time log config (a behaviour copied from the default one is added if the path has
none) and standard logging is turned on if it was off; what was changed is recorded in a tag
(``resources/attachment.py``) and undone by destroy. Every update sends the ETag it read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from infra import tags
from infra.aws import error_code
from infra.errors import InfraError
from infra.resources import distribution_config as dc
from infra.resources.attachment import Attachment
from infra.resources.base import Fix, Resource

Mutation = Callable[[dict[str, Any]], None]


class Distribution(Resource):
    kind = "distribution"
    variable = "OPENS_INFRA_DISTRIBUTION_ID"

    @property
    def name(self) -> str:
        return (
            self.env.distribution_id
            or self.env.infra.distribution_id
            or dc.comment(self.env.infra.stack)
        )

    # --- reading ---------------------------------------------------------------------------

    def _find_created(self) -> dict[str, Any] | None:
        cloudfront, wanted = self.env.clients.cloudfront, dc.comment(self.env.infra.stack)
        marker: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Marker": marker} if marker else {}
            page = cloudfront.list_distributions(**kwargs)["DistributionList"]
            for item in page.get("Items", []) or []:
                if item.get("Comment") == wanted:
                    found: dict[str, Any] = dict(item)
                    return found
            marker = page.get("NextMarker")
            if not page.get("IsTruncated") or not marker:
                return None

    def read(self) -> bool:
        attach_id = self.env.infra.distribution_id
        if attach_id is not None:
            try:
                dist = self.env.clients.cloudfront.get_distribution(Id=attach_id)["Distribution"]
            except ClientError as exc:
                if error_code(exc) == "NoSuchDistribution":
                    msg = f"distribution {attach_id} to attach to does not exist"
                    raise InfraError(
                        msg,
                        resource=self.kind,
                        hint="check OPENS_INFRA_DISTRIBUTION_ID, or unset it to create one",
                    ) from None
                raise
            self._remember(dist["Id"], dist["ARN"], dist["DomainName"])
            return True
        found = self._find_created()
        if found is None:
            return False
        self._remember(found["Id"], found["ARN"], found["DomainName"])
        return True

    def _remember(self, distribution_id: str, arn: str, domain: str) -> None:
        self.env.distribution_id = distribution_id
        self.env.distribution_arn = arn
        self.env.distribution_domain = domain

    def _tags(self) -> dict[str, str]:
        out = self.env.clients.cloudfront.list_tags_for_resource(Resource=self._arn())
        return tags.from_list(out.get("Tags", {}).get("Items", []) or [])

    def owned(self) -> bool:
        return tags.is_managed(self._tags(), self.env.infra.stack)

    def adoptable(self) -> bool:
        """An attached distribution: apply changes it (recording how) but never deletes it."""
        return self.env.infra.attach

    def _config(self) -> tuple[dict[str, Any], str]:
        out = self.env.clients.cloudfront.get_distribution_config(Id=self._id())
        return dict(out["DistributionConfig"]), out["ETag"]

    def _arn(self) -> str:
        if self.env.distribution_arn is None:
            msg = "the distribution is not known yet"
            raise InfraError(msg, resource=self.kind)
        return self.env.distribution_arn

    def _id(self) -> str:
        if self.env.distribution_id is None:
            msg = "the distribution is not known yet"
            raise InfraError(msg, resource=self.kind)
        return self.env.distribution_id

    # --- wanted state ----------------------------------------------------------------------

    def _origin(self) -> dict[str, Any]:
        return dc.s3_origin(self.env.infra.pixel_bucket, self.env.region, self.env.oac_id or "")

    def _logging(self) -> dict[str, Any]:
        return dc.logging(self.env.infra.log_bucket, self.env.infra.log_prefix)

    def create(self) -> None:
        infra = self.env.infra
        config: Any = dc.new_config(
            caller_reference=f"opens-{infra.stack}-{uuid.uuid4().hex}",
            stack=infra.stack,
            origin=self._origin(),
            pixel_path=self.env.pixel_path,
            realtime_arn=self.env.realtime_log_config_arn,
            log=self._logging(),
            price_class=infra.price_class,
        )
        out = self.env.clients.cloudfront.create_distribution_with_tags(
            DistributionConfigWithTags={
                "DistributionConfig": config,
                "Tags": {"Items": tags.as_list(tags.managed_tags(infra.stack))},
            }
        )
        dist = out["Distribution"]
        self._remember(dist["Id"], dist["ARN"], dist["DomainName"])

    def _differences(self, config: dict[str, Any]) -> list[tuple[str, Mutation]]:
        """What differs, each with the edit that fixes it on a freshly read config."""
        out: list[tuple[str, Mutation]] = []
        path, arn = self.env.pixel_path, self.env.realtime_log_config_arn
        pixel = dc.find_behavior(config, path)
        if self.env.infra.attach:
            if arn is not None and (pixel is None or pixel.get("RealtimeLogConfigArn") != arn):
                out.append(
                    ("pixel behaviour real-time logs", lambda c: _put_behavior(c, path, arn))
                )
            if not config.get("Logging", {}).get("Enabled"):
                log = self._logging()
                out.append(("standard logging", lambda c: c.__setitem__("Logging", log)))
            return out
        origin = self._origin()
        if not _origin_matches(dc.find_origin(config, dc.ORIGIN_ID), origin):
            out.append(("pixel bucket origin", lambda c: dc.put_origin(c, origin)))
        if config.get("DefaultCacheBehavior", {}).get("TargetOriginId") != dc.ORIGIN_ID:
            out.append(
                (
                    "default behaviour origin",
                    lambda c: c["DefaultCacheBehavior"].__setitem__("TargetOriginId", dc.ORIGIN_ID),
                )
            )
        if (
            pixel is None
            or pixel.get("RealtimeLogConfigArn", "") != (arn or "")
            or pixel.get("TargetOriginId") != dc.ORIGIN_ID
        ):

            def fix_pixel(c: dict[str, Any]) -> None:
                dc.remove_behavior(c, path)
                items = list(c.get("CacheBehaviors", {}).get("Items", []) or [])
                items.insert(0, dc.pixel_behavior(dc.behavior(dc.ORIGIN_ID), path, arn))
                dc.set_behaviors(c, items)

            out.append(("pixel behaviour real-time logs", fix_pixel))
        log = self._logging()
        if {k: config.get("Logging", {}).get(k) for k in log} != log:
            out.append(("standard logging", lambda c: c.__setitem__("Logging", log)))
        if config.get("Enabled") is not True:
            out.append(("enabled", lambda c: c.__setitem__("Enabled", True)))
        return out

    def drift(self) -> list[Fix]:
        config, _ = self._config()
        differences = self._differences(config)
        if not differences:
            return []

        def fix() -> None:
            if self.env.infra.attach:
                self._record_attachment()

            def edit(c: dict[str, Any]) -> None:
                # Re-derived from the config read right before the update (ETag).
                for _, mutate in self._differences(c):
                    mutate(c)

            self._update(edit)

        return [Fix(", ".join(name for name, _ in differences), fix)]

    # --- updates, with ETag/IfMatch ----------------------------------------------------------

    def _update(self, edit: Mutation) -> None:
        """Read the config and its ETag, edit, update with IfMatch; once more if it moved."""
        cloudfront = self.env.clients.cloudfront
        for attempt in (1, 2):
            config, etag = self._config()
            edit(config)
            payload: Any = config
            try:
                cloudfront.update_distribution(
                    Id=self._id(),
                    IfMatch=etag,
                    DistributionConfig=payload,
                )
            except ClientError as exc:
                if error_code(exc) == "PreconditionFailed" and attempt == 1:
                    continue  # someone else changed it between our read and our write
                raise
            return

    def _record_attachment(self) -> None:
        """Tag the attached distribution with how it was found, unless already tagged."""
        if tags.ATTACHED_KEY in self._tags():
            return
        config, _ = self._config()
        pixel = dc.find_behavior(config, self.env.pixel_path)
        found = Attachment(
            behavior_added=pixel is None,
            original_realtime_arn=str(pixel.get("RealtimeLogConfigArn", "")) if pixel else "",
            logging_added=not config.get("Logging", {}).get("Enabled", False),
        )
        self.env.clients.cloudfront.tag_resource(
            Resource=self._arn(),
            Tags={"Items": [{"Key": tags.ATTACHED_KEY, "Value": found.encode()}]},
        )

    def _wait_deployed(self) -> None:
        cloudfront, dist_id = self.env.clients.cloudfront, self._id()

        def deployed() -> bool:
            status = cloudfront.get_distribution(Id=dist_id)["Distribution"]["Status"]
            return status == "Deployed"

        self.env.wait_until(
            f"distribution {dist_id} to deploy (CloudFront takes minutes)",
            deployed,
            resource=self.kind,
        )

    # --- destroy -----------------------------------------------------------------------------

    def delete(self) -> None:
        """Disable, wait until deployed, delete: CloudFront deletes disabled distributions only."""
        cloudfront = self.env.clients.cloudfront
        config, _ = self._config()
        if config.get("Enabled"):
            self._update(lambda c: c.__setitem__("Enabled", False))
        self._wait_deployed()
        _, etag = self._config()
        cloudfront.delete_distribution(Id=self._id(), IfMatch=etag)

    def release(self) -> bool:
        """Put an attached distribution back as apply found it, then drop the record."""
        recorded = self._tags().get(tags.ATTACHED_KEY)
        if recorded is None:
            return False
        found = Attachment.decode(recorded)
        path = self.env.pixel_path

        def restore(c: dict[str, Any]) -> None:
            if found.behavior_added:
                dc.remove_behavior(c, path)
            elif (pixel := dc.find_behavior(c, path)) is not None:
                pixel["RealtimeLogConfigArn"] = found.original_realtime_arn
            if found.logging_added:
                c["Logging"] = {
                    "Enabled": False,
                    "IncludeCookies": False,
                    "Bucket": "",
                    "Prefix": "",
                }

        self._update(restore)
        # The real-time log config stays "in use" until this change is deployed.
        self._wait_deployed()
        self.env.clients.cloudfront.untag_resource(
            Resource=self._arn(), TagKeys={"Items": [tags.ATTACHED_KEY]}
        )
        return True

    def attached_record(self) -> str | None:
        return self._tags().get(tags.ATTACHED_KEY)

    def describe(self) -> str:
        dist = self.env.clients.cloudfront.get_distribution(Id=self._id())["Distribution"]
        config = dist["DistributionConfig"]
        pixel = dc.find_behavior(dict(config), self.env.pixel_path) or {}
        realtime = str(pixel.get("RealtimeLogConfigArn") or "none").rsplit("/", 1)[-1]
        logging = config.get("Logging", {})
        logs = logging.get("Bucket") if logging.get("Enabled") else "off"
        return (
            f"{dist['Status']}, https://{dist['DomainName']}{self.env.pixel_path}, "
            f"real-time → {realtime}, standard logs → {logs}"
        )


def _put_behavior(config: dict[str, Any], path: str, arn: str) -> None:
    dc.put_pixel_behavior(config, path, arn)


def _origin_matches(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    if current is None or current.get("DomainName") != wanted["DomainName"]:
        return False
    if "S3OriginConfig" not in current and "CustomOriginConfig" not in current:
        # AWS always returns an origin's type; an endpoint that drops it (moto 5.2 drops both
        # the type and the OAC id) cannot be checked further, and rewriting would never stick.
        return True
    return bool(current.get("OriginAccessControlId") == wanted["OriginAccessControlId"])
