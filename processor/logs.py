"""Worker log configuration: readable text by default, one JSON object per line for collectors."""

from __future__ import annotations

from typing import Any, Literal

JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"


def logging_config(fmt: Literal["text", "json"], level: str = "INFO") -> dict[str, Any] | None:
    """A ``logging.config.dictConfig`` for ``fmt``; ``None`` keeps mode's own text format.

    JSON lines carry ``asctime``, ``levelname``, ``name``, ``process`` and ``message`` (plus any
    ``extra=`` fields and ``exc_info`` as text), so a log shipper needs no parsing rules.
    """
    if fmt == "text":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": JSON_FIELDS,
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }
