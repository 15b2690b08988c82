"""The pixel itself: the 43-byte transparent 1x1 GIF89a (DESIGN §3) and how it is served."""

from __future__ import annotations

import hashlib

from processor.core.pixel import PIXEL_GIF  # the one definition of the GIF

__all__ = ["CACHE_CONTROL", "CONTENT_TYPE", "PIXEL_GIF", "pixel_etag"]

CONTENT_TYPE = "image/gif"

# Browsers and mail proxies must ask again on every open so each one reaches the edge and the
# logs. The edge itself may cache (see resources/distribution.py): logs record viewer requests.
CACHE_CONTROL = "no-cache, no-store, must-revalidate"


def pixel_etag() -> str:
    """S3's ETag of a single-part upload of the GIF: the MD5 of its bytes, quoted."""
    return '"' + hashlib.md5(PIXEL_GIF, usedforsecurity=False).hexdigest() + '"'
