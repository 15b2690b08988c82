"""Errors of the infra module; each carries the fields a caller acts on."""

from __future__ import annotations

from processor.errors import OpensError


class InfraError(OpensError):
    """Provisioning could not go on; ``resource`` names the step (``kinesis-stream`` …)."""

    def __init__(self, message: str, *, resource: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.resource = resource


class MissingApi(InfraError):
    """The endpoint does not implement an API (moto has no real-time log configs)."""

    def __init__(self, *, resource: str, api: str) -> None:
        super().__init__(
            f"the AWS endpoint does not implement {api}",
            resource=resource,
            hint="apply --allow-missing-apis provisions everything else",
        )
        self.api = api


class AwsCallFailed(InfraError):
    """An AWS call was refused; ``operation`` and ``code`` are AWS's own names."""

    def __init__(
        self, message: str, *, resource: str, operation: str, code: str, hint: str | None = None
    ) -> None:
        super().__init__(message, resource=resource, hint=hint)
        self.operation = operation
        self.code = code


class NotManaged(InfraError):
    """A resource with the configured name exists but was not created by this stack."""

    def __init__(self, *, resource: str, name: str, variable: str) -> None:
        super().__init__(
            f"{resource} {name} exists but is not tagged as managed by this stack",
            resource=resource,
            hint=f"choose another name with {variable}, or tag it opens:managed=true to adopt it",
        )
        self.name = name


class DeployTimeout(InfraError):
    """CloudFront did not finish deploying a change in time; re-running continues from there."""
