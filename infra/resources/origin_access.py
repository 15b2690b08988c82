"""The CloudFront origin access control that signs the distribution's requests to the private
pixel bucket. OACs take no tags: the description carries this stack's marker instead."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from infra.aws import error_code
from infra.resources.base import Fix, Resource


def marker(stack: str) -> str:
    return f"cloudfront-opens stack {stack}: pixel bucket access"


class OriginAccessControl(Resource):
    kind = "origin-access-control"
    variable = "OPENS_INFRA_ORIGIN_ACCESS_CONTROL"

    @property
    def name(self) -> str:
        return self.env.infra.origin_access_control

    def wanted(self) -> Any:
        return {
            "Name": self.name,
            "Description": marker(self.env.infra.stack),
            "SigningProtocol": "sigv4",
            "SigningBehavior": "always",
            "OriginAccessControlOriginType": "s3",
        }

    def _find(self) -> dict[str, Any] | None:
        cloudfront = self.env.clients.cloudfront
        marker_: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Marker": marker_} if marker_ else {}
            page = cloudfront.list_origin_access_controls(**kwargs)["OriginAccessControlList"]
            for item in page.get("Items", []):
                if item["Name"] == self.name:
                    found: dict[str, Any] = dict(item)
                    return found
            marker_ = page.get("NextMarker")
            if not page.get("IsTruncated") or not marker_:
                return None

    def read(self) -> bool:
        found = self._find()
        self.env.oac_id = found["Id"] if found else None
        return found is not None

    def create(self) -> None:
        out = self.env.clients.cloudfront.create_origin_access_control(
            OriginAccessControlConfig=self.wanted()
        )
        self.env.oac_id = out["OriginAccessControl"]["Id"]

    def owned(self) -> bool:
        found = self._find() or {}
        return found.get("Description") == marker(self.env.infra.stack)

    def drift(self) -> list[Fix]:
        found = self._find() or {}
        wanted = self.wanted()
        if all(found.get(k) == v for k, v in wanted.items()):
            return []

        def update() -> None:
            cloudfront, oac_id = self.env.clients.cloudfront, str(found["Id"])
            etag = cloudfront.get_origin_access_control(Id=oac_id)["ETag"]
            cloudfront.update_origin_access_control(
                Id=oac_id,
                IfMatch=etag,
                OriginAccessControlConfig=wanted,
            )

        return [Fix("signing settings", update)]

    def delete(self) -> None:
        cloudfront = self.env.clients.cloudfront
        found = self._find()
        if found is None:
            return
        try:
            etag = cloudfront.get_origin_access_control(Id=found["Id"])["ETag"]
            cloudfront.delete_origin_access_control(Id=found["Id"], IfMatch=etag)
        except ClientError as exc:
            if error_code(exc) != "NoSuchOriginAccessControl":
                raise

    def describe(self) -> str:
        return f"id {self.env.oac_id}, sigv4 always, s3"
