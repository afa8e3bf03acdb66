# The one recipe every roomcast service image is built on.
#
#   builder: the Python base plus a pinned uv, used only in build stages
#   runtime: the Python base plus an unprivileged user; no compilers, no uv, no pip use
#
# PYTHON_IMAGE is any Debian-based image with Python 3.11 and the venv module on PATH
# (python:3.11-slim-bookworm by default; `make images` can use a locally built one).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric id, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" roomcast \
 && useradd --system --uid "${APP_UID}" --gid roomcast --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin roomcast
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ROOMCAST_MODE=production
WORKDIR /opt/roomcast
USER 10001:10001
STOPSIGNAL SIGTERM

FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
# A corporate TLS proxy's CA bundle may be handed in as the optional build secret
# "ca_bundle"; without it the image's own certificates are used.
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV PATH=/opt/uv/bin:${PATH} \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
