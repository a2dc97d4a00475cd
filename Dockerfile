# syntax=docker/dockerfile:1
# charged — the collector image.
#   build:  docker build -t charged:local .
#   run:    see docker-compose.yml and docs/install.md
# Two stages: "build" makes a virtualenv with the package and its runtime dependencies only
# (no dev extras, no compiler); "runtime" copies that venv onto a clean slim base and runs it
# as an unprivileged user.  No secret is ever part of the image: the config is mounted at
# /etc/charged/config.yaml and secrets come from the environment (CHARGED_API_*,
# CHARGED_DATABASE_URL) or from files named in the config.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/charged
WORKDIR /src
# Only what the package needs to build (see .dockerignore): the image never sees .env,
# config files, databases or the test suite.
COPY pyproject.toml README.md ./
COPY charged ./charged
# --only-binary: every dependency installs from a wheel, so no compiler is needed here.
RUN /opt/charged/bin/pip install --no-cache-dir --only-binary=:all: . \
    && /opt/charged/bin/charged --version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="charged" \
      org.opencontainers.image.description="Charge Amps EV charger collector (vendor cloud API → MySQL/SQLite)" \
      org.opencontainers.image.licenses="MIT"
# A fixed uid/gid so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 charged \
    && useradd --system --uid 10001 --gid charged --no-create-home \
       --home-dir /var/lib/charged --shell /usr/sbin/nologin charged \
    && install -d -o charged -g charged -m 0750 /var/lib/charged /var/lib/charged/spool \
    && install -d -m 0755 /etc/charged
COPY --from=build /opt/charged /opt/charged
ENV PATH=/opt/charged/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CHARGED_CONFIG=/etc/charged/config.yaml
USER 10001:10001
WORKDIR /var/lib/charged
# State: the disk spool (spool.directory: /var/lib/charged/spool), the token cache and, for
# SQLite users, the database.  A named volume here survives upgrades of the image.
VOLUME ["/var/lib/charged"]
# /healthz, /readyz, /metrics (set ops.host: 0.0.0.0 in the container's config)
EXPOSE 9464
# Ready = the first tick was stored and ticks keep succeeding.  The slim image has no curl:
# urlopen raises (→ exit 1) on a refused connection, a timeout or any non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/readyz', timeout=4)"]
# SIGTERM → drain the queue (shutdown.drain_timeout), spool the rest, exit 0.
STOPSIGNAL SIGTERM
CMD ["charged", "run", "-c", "/etc/charged/config.yaml"]
