"""The pure decoding core: log bytes in, ``Hit`` values out (no faust, boto3 or ClickHouse here).

Formats: ``realtime`` (Kinesis records, ``kpl`` deaggregation), ``standard`` (legacy W3C and
standard logging v2), ``s3access``. All three extract field values and hand them to
``builder.HitBuilder``, the one place where the pixel query is parsed (``pixel``), the signature
checked, the request classified (``classify`` with ``egress`` data) and the client IP treated
(``privacy``). ``reader`` + ``logparse`` stream whole files with per-reason failure counts.
"""
