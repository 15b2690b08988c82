"""The worker image's Dockerfile, checked statically (no Docker engine here)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field

import pytest

from tests.deploy.common import PINNED, REPO

pytestmark = pytest.mark.unit


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def parse(text: str) -> list[Stage]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    stages: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            m = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            assert m, f"unreadable FROM {rest!r}"
            stages.append(Stage(m.group(1), m.group(2)))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, rest))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse((REPO / "Dockerfile").read_text())


def test_parser_reads_stages() -> None:
    got = parse("FROM a:1 AS x\nRUN echo \\\n  hi\n# c\nFROM x\nUSER 1\n")
    assert [(s.image, s.name) for s in got] == [("a:1", "x"), ("x", None)]
    assert got[0].args("RUN") == ["echo    hi"]


def test_multi_stage_with_pinned_bases(stages: list[Stage]) -> None:
    assert len(stages) >= 3, "native build, dependency build, runtime"
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.image in names:
            continue
        assert PINNED.match(stage.image), f"base image {stage.image!r} is not pinned"
    runtime = stages[-1]
    assert "slim" in runtime.image
    # The runtime stage must not inherit a toolchain: it starts from a Python base.
    assert runtime.image.startswith("python:")
    assert runtime.image == next(s.image for s in stages if s.name == "build"), (
        "the venv is copied between stages, so both need the same Python"
    )


def test_runs_as_non_root(stages: list[Stage]) -> None:
    users = stages[-1].args("USER")
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"runs as {user}"
    last_user = max(i for i, (k, _) in enumerate(stages[-1].instructions) if k == "USER")
    later = [k for k, _ in stages[-1].instructions[last_user:]]
    assert "CMD" in later, "the worker's command must run as that user"


def test_healthcheck_probes_healthz(stages: list[Stage]) -> None:
    (check,) = stages[-1].args("HEALTHCHECK")
    assert "/healthz" in check
    cmd = json.loads(check[check.index("CMD") + 3 :].strip())
    assert cmd[0] == "python", "slim images have neither curl nor wget"
    assert stages[-1].args("CMD") == ['["opens", "worker"]']


def test_installs_from_the_runtime_lock(stages: list[Stage]) -> None:
    build = next(s for s in stages if s.name == "build")
    runs = " ".join(build.args("RUN"))
    assert "uv pip sync" in runs and "requirements-runtime.lock" in runs
    assert re.search(r"uv==\d+\.\d+\.\d+", runs), "the installer itself is pinned"
    # The package is installed without resolving anything beyond the lock.
    assert re.search(r"uv pip install [^&]*--no-deps", runs)
    assert any(a.startswith("--from=build") for a in stages[-1].args("COPY"))


def test_builds_and_installs_the_native_extension(stages: list[Stage]) -> None:
    native = next(s for s in stages if s.name == "native")
    assert native.image.startswith("rust:")
    runs = " ".join(native.args("RUN"))
    assert re.search(r"maturin==\d+\.\d+\.\d+", runs)
    assert "maturin build --release --manifest-path native/Cargo.toml" in runs
    assert "COPY native ./native" in [f"COPY {a}" for a in native.args("COPY")]
    build = next(s for s in stages if s.name == "build")
    assert "--from=native /wheels /wheels" in build.args("COPY")
    assert "/wheels/*.whl" in " ".join(build.args("RUN"))


def test_copied_sources_exist_and_are_not_ignored(stages: list[Stage]) -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage in stages:
        for arg in stage.args("COPY"):
            if arg.startswith("--from"):
                continue
            *sources, _ = arg.split()
            for source in sources:
                for pattern in ignored:
                    assert not fnmatch.fnmatch(source, pattern), f"{source} is .dockerignored"
                if source == "native" and not (REPO / "native").exists():
                    continue  # the Rust extension lands from its own branch
                assert (REPO / source).exists(), f"COPY {source}: no such file"


def test_native_project_is_buildable() -> None:
    native = REPO / "native"
    assert native.is_dir(), "native/ (the Rust extension) is missing"
    assert (native / "Cargo.toml").is_file()
    build = tomllib.loads((native / "pyproject.toml").read_text())["build-system"]
    assert build["build-backend"] == "maturin"
