"""plan, apply, destroy and status over the ordered list of resources.

Apply order = dependency order: buckets, stream, role (names the stream), real-time log config
(names both), origin access control, distribution (names the config, the OAC, the buckets),
pixel bucket policy (names the distribution). Destroy walks it backwards, deleting only what
carries this stack's marks and putting an attached distribution back as it was found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from infra.aws import Clients, aws_errors, error_code, make_clients
from infra.errors import MissingApi, NotManaged
from infra.plan import Action, Change
from infra.resources.base import Env, Resource, StatusRow
from infra.resources.buckets import LogBucket, PixelBucket, PixelBucketPolicy
from infra.resources.distribution import Distribution
from infra.resources.origin_access import OriginAccessControl
from infra.resources.realtime_log import RealtimeLogConfig
from infra.resources.role import Role
from infra.resources.stream import Stream
from infra.settings import InfraSettings
from processor.settings import Settings

Progress = Callable[[Change], None]
FLOW_WINDOW = timedelta(minutes=15)


def _quiet(_: Change) -> None:
    return None


def build_env(
    settings: Settings,
    infra: InfraSettings,
    *,
    clients: Clients | None = None,
    allow_missing_apis: bool = False,
) -> Env:
    """The run context: clients from boto3's chain and the account they act in."""
    with aws_errors("account"):
        clients = clients or make_clients(infra.region)
        account = clients.sts.get_caller_identity()["Account"]
    return Env(
        infra=infra,
        clients=clients,
        account_id=account,
        stream_name=settings.kinesis_stream,
        realtime_fields=settings.realtime_fields,
        pixel_path=settings.pixel_path,
        allow_missing_apis=allow_missing_apis,
    )


def resources(env: Env) -> list[Resource]:
    """Every resource, in apply order. Attaching skips what the existing distribution has."""
    create_mode = not env.infra.attach
    out: list[Resource] = [LogBucket(env)]
    if create_mode:
        out.append(PixelBucket(env))
    out += [Stream(env), Role(env), RealtimeLogConfig(env)]
    if create_mode:
        out.append(OriginAccessControl(env))
    out.append(Distribution(env))
    if create_mode:
        out.append(PixelBucketPolicy(env))
    return out


def _refuse_foreign(r: Resource) -> None:
    if not r.owned() and not r.adoptable():
        raise NotManaged(resource=r.kind, name=r.name, variable=r.variable)


def plan(env: Env) -> list[Change]:
    """What apply would do, read-only. A resource the endpoint lacks is ``unsupported``."""
    changes: list[Change] = []
    for r in resources(env):
        with aws_errors(r.kind):
            try:
                exists = r.read()
            except MissingApi as exc:
                changes.append(Change(r.kind, r.name, "unsupported", (exc.api,)))
                continue
            if not exists:
                changes.append(Change(r.kind, r.name, "create"))
                continue
            _refuse_foreign(r)
            fixes = r.drift()
            action: Action = "update" if fixes else "none"
            changes.append(Change(r.kind, r.name, action, tuple(f.aspect for f in fixes)))
    return changes


@dataclass(frozen=True)
class Applied:
    changes: list[Change]
    stream: str
    base_url: str | None  # https://<distribution domain>; None if there is no distribution


def apply(env: Env, *, planned: list[Change] | None = None, progress: Progress = _quiet) -> Applied:
    """Make the account match the settings: create what is missing, fix what differs.

    Checks first (``planned``, or a fresh plan) that the endpoint has every API, so that without
    ``allow_missing_apis`` nothing is changed on an endpoint that lacks one.
    """
    planned = plan(env) if planned is None else planned
    missing = [c for c in planned if c.action == "unsupported"]
    if missing and not env.allow_missing_apis:
        raise MissingApi(resource=missing[0].resource, api=missing[0].details[0])
    changes: list[Change] = []
    for r in resources(env):
        change = ensure(r)
        changes.append(change)
        progress(change)
    domain = env.distribution_domain
    return Applied(changes, env.stream_name, f"https://{domain}" if domain else None)


def ensure(r: Resource) -> Change:
    """One resource: read it, create it if missing, then fix every difference, in order."""
    with aws_errors(r.kind):
        try:
            exists = r.read()
        except MissingApi as exc:
            if not r.env.allow_missing_apis:
                raise
            return Change(r.kind, r.name, "unsupported", (exc.api,))
        if exists:
            _refuse_foreign(r)
        else:
            r.create()
        fixes = r.drift()
        for fix in fixes:
            fix.apply()
        action: Action = "create" if not exists else ("update" if fixes else "none")
        return Change(r.kind, r.name, action, tuple(f.aspect for f in fixes))


def destroy(
    env: Env, *, keep_logs: bool = False, dry_run: bool = False, progress: Progress = _quiet
) -> list[Change]:
    """Delete what this stack created, newest first; put an attached distribution back."""
    changes: list[Change] = []
    for r in reversed(resources(env)):
        with aws_errors(r.kind):
            try:
                exists = r.read()
            except MissingApi as exc:
                change = Change(r.kind, r.name, "unsupported", (exc.api,))
            else:
                change = _destroy_one(r, exists, keep_logs=keep_logs, dry_run=dry_run)
        changes.append(change)
        progress(change)
    return changes


def _destroy_one(r: Resource, exists: bool, *, keep_logs: bool, dry_run: bool) -> Change:
    if not exists:
        return Change(r.kind, r.name, "none", ("absent",))
    if r.owned():
        if keep_logs and isinstance(r, LogBucket):
            return Change(r.kind, r.name, "none", ("kept (--keep-logs)",))
        if not dry_run:
            r.delete()
        return Change(r.kind, r.name, "delete")
    if isinstance(r, Distribution) and r.attached_record() is not None:
        if not dry_run:
            r.release()
        return Change(r.kind, r.name, "update", ("restored as found before apply",))
    return Change(r.kind, r.name, "none", ("not created by this stack: left alone",))


def status(env: Env) -> list[StatusRow]:
    rows: list[StatusRow] = []
    for r in resources(env):
        with aws_errors(r.kind):
            try:
                exists = r.read()
            except MissingApi as exc:
                rows.append(StatusRow(r.kind, r.name, "unsupported", exc.api))
                continue
            if not exists:
                rows.append(StatusRow(r.kind, r.name, "missing"))
            elif not r.owned() and not r.adoptable():
                rows.append(StatusRow(r.kind, r.name, "not managed", r.describe()))
            else:
                rows.append(StatusRow(r.kind, r.name, "present", r.describe()))
    return rows


def records_flowing(env: Env, now: datetime | None = None) -> str:
    """The stream's ``IncomingRecords`` over the last 15 minutes, from CloudWatch."""
    end = now or datetime.now(UTC)
    try:
        out = env.clients.cloudwatch.get_metric_statistics(
            Namespace="AWS/Kinesis",
            MetricName="IncomingRecords",
            Dimensions=[{"Name": "StreamName", "Value": env.stream_name}],
            StartTime=end - FLOW_WINDOW,
            EndTime=end,
            Period=60,
            Statistics=["Sum"],
        )
    except ClientError as exc:
        return f"unknown (CloudWatch: {error_code(exc) or 'error'})"
    except BotoCoreError as exc:
        return f"unknown (CloudWatch: {exc})"
    total = sum(int(p.get("Sum", 0)) for p in out.get("Datapoints", []))
    if total:
        return f"flowing: {total} records in the last 15 min"
    return "no records in the last 15 min"
