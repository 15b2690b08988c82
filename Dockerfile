# The worker image: slim, non-root, the exact locked runtime dependencies, the Rust extension
# built from source. Base images are pinned to a version and to Debian bookworm, so the
# extension's wheel (built against bookworm's glibc and Python 3.11) fits the runtime stage.

# --- 1. the Rust extension (native/: a maturin/pyo3 project) as a wheel ---
FROM rust:1.91.1-slim-bookworm AS native
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-dev python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin \
 && /opt/maturin/bin/pip install --no-cache-dir 'maturin==1.16.0'
WORKDIR /src
COPY native ./native
# Crates come from crates.io at the versions of native/Cargo.lock when it is committed.
RUN /opt/maturin/bin/maturin build --release --manifest-path native/Cargo.toml \
      --interpreter python3 --out /wheels

# --- 2. the virtualenv: locked dependencies, then the package and the extension ---
FROM python:3.11.14-slim-bookworm AS build
RUN pip install --no-cache-dir 'uv==0.13.9'
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY requirements-runtime.lock ./
RUN uv venv /opt/venv \
 && uv pip sync --python /opt/venv/bin/python requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY processor ./processor
COPY infra ./infra
COPY --from=native /wheels /wheels
RUN uv pip install --python /opt/venv/bin/python --no-deps . /wheels/*.whl

# --- 3. runtime: no compilers, no uv, no build context ---
FROM python:3.11.14-slim-bookworm
RUN useradd --create-home --uid 10001 opens \
 && mkdir /data && chown opens /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OPENS_DATA_DIR=/data \
    OPENS_WEB_HOST=0.0.0.0 \
    OPENS_WEB_PORT=6066
USER 10001:10001
WORKDIR /data
EXPOSE 6066
# /healthz answers 200 once the worker has joined the consumer group and reads its shards.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('OPENS_WEB_PORT', '6066'), timeout=4)"]
CMD ["opens", "worker"]
