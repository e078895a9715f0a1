# syntax=docker/dockerfile:1
# dops image: the operator (`dops operator`) and the default worker (`dops worker run NS/NAME`).
# Stage 1 builds wheels for dops and every dependency (compilers, if a dependency ever needs one, live only here);
# stage 2 installs those wheels offline into a slim runtime with no compilers and runs as a non-root user.
# Invariants are checked without Docker by tests/unit/test_dockerfile.py.

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="dops" \
      org.opencontainers.image.description="Kubernetes-native delegated operations" \
      org.opencontainers.image.source="https://example.invalid/dops" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Offline install from the build stage's wheels (bind-mounted, so they add no layer to the image).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels dops \
    && groupadd --system --gid 65532 dops \
    && useradd --system --uid 65532 --gid 65532 --home-dir /home/dops --create-home --shell /usr/sbin/nologin dops
USER 65532:65532
WORKDIR /home/dops
# 8080: Prometheus /metrics (DOPS_METRICS_PORT); 8081: /healthz (DOPS_HEALTH_PORT).
EXPOSE 8080 8081
ENTRYPOINT ["dops"]
CMD ["operator"]
