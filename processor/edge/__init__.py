"""A local stand-in for a CloudFront edge (development and tests only): `opens edge`.

It serves the pixel, and logs every request the way CloudFront does — a real-time record to
Kinesis and a line in an hourly gzip standard log in S3 — so both pipeline paths see the same
requests, as in production.
"""
