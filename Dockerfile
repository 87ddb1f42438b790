# syntax=docker/dockerfile:1
# Puerta's container image: `docker build -t puerta:0.1.0 .`
#
# Two stages on the same pinned base. The first builds a wheel of this project and installs it,
# with its dependencies (all of them ship manylinux wheels, so no compiler is needed), into a
# virtualenv at /opt/puerta; the second copies only that virtualenv. The runtime image has no
# pip cache, no build tools and no source tree, and runs as UID/GID 10001.
#
# Pinned by tag; to pin by digest too, append @sha256:<digest of the multi-arch index> to the
# value below (tests/test_packaging.py accepts both forms).
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/puerta
# Only what the wheel is built from (see .dockerignore): a change elsewhere keeps this cache.
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/puerta/bin/python -m pip install /wheels/puerta-*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="puerta" \
      org.opencontainers.image.description="Gating service for Flagger canary deployments" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed, numeric, non-root user, so that Kubernetes' runAsNonRoot can check it. Its home and
# working directory /var/lib/puerta is the only place it can write: the embedded SQLite
# default (sqlite:///puerta.db, relative to the working directory) lands there. Production
# with more than one replica uses PostgreSQL (PUERTA_DATABASE_URL); see docs/deploy.md.
RUN groupadd --system --gid 10001 puerta \
    && useradd --system --uid 10001 --gid 10001 \
       --home-dir /var/lib/puerta --no-create-home --shell /usr/sbin/nologin puerta \
    && mkdir -p /var/lib/puerta /etc/puerta \
    && chown 10001:10001 /var/lib/puerta
COPY --from=build /opt/puerta /opt/puerta
# The bundled example policy as a default; Kubernetes mounts the chart's ConfigMap over it.
COPY examples/policy.yaml /etc/puerta/policy.yaml
# PUERTA_DATABASE_URL is deliberately not set here: it would win over a policy file's
# database.url. Without either, Puerta uses /var/lib/puerta/puerta.db.
ENV PATH="/opt/puerta/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PUERTA_CONFIG=/etc/puerta/policy.yaml \
    PUERTA_LOG_FORMAT=json
WORKDIR /var/lib/puerta
VOLUME ["/var/lib/puerta"]
USER 10001:10001
EXPOSE 8080
# slim has no curl: the standard library asks /healthz (the process is up). It assumes the
# default port 8080; Kubernetes ignores HEALTHCHECK and uses the chart's probes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# uvicorn stops on SIGTERM: it stops accepting, finishes the requests under way, then exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["puerta"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
