# The worker image: slim, non-root, exact locked dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml requirements-runtime.lock README.md ./
COPY processor ./processor
COPY infra ./infra
RUN pip install --no-cache-dir 'uv>=0.5,<1' \
 && uv venv /opt/venv \
 && uv pip sync --python /opt/venv/bin/python requirements-runtime.lock \
 && uv pip install --python /opt/venv/bin/python --no-deps .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 opens && mkdir /data && chown opens /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 OPENS_DATA_DIR=/data
USER opens
WORKDIR /data
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
  CMD python -c "import urllib.request;urllib.request.urlopen('http://127.0.0.1:6066/healthz')"
CMD ["opens", "worker"]
