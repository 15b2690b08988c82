"""One root exception for the project; every error carries the fields a caller acts on."""

from __future__ import annotations


class OpensError(Exception):
    """Root of every error this project raises on purpose.

    ``hint`` says what the user can do about it; the CLI prints ``message`` and ``hint`` on one
    line and exits non-zero instead of showing a traceback.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(OpensError):
    """A setting is missing or invalid; ``variable`` names the environment variable."""

    exit_code = 2

    def __init__(self, message: str, *, variable: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.variable = variable


class StackError(OpensError):
    """The local development stack could not be started, checked or stopped."""

    def __init__(self, message: str, *, component: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.component = component


class SinkUnavailable(OpensError):
    """ClickHouse did not accept a batch; ``retry_after`` is the back-off in seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
