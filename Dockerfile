# syntax=docker/dockerfile:1
# dops image: the operator (`dops operator`) and the default worker (`dops worker run NS/NAME`).
# Stage 1 builds a wheel; stage 2 installs it into a slim runtime with no compilers, as a non-root user.

FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2.post1
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m build --wheel --outdir /dist

FROM python:3.11.14-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="dops" \
      org.opencontainers.image.description="Kubernetes-native delegated operations" \
      org.opencontainers.image.source="https://example.invalid/dops" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /dist/*.whl /tmp/
RUN pip install /tmp/*.whl && rm -f /tmp/*.whl \
    && groupadd --system --gid 65532 dops \
    && useradd --system --uid 65532 --gid 65532 --home-dir /home/dops --create-home dops
USER 65532:65532
WORKDIR /home/dops
ENTRYPOINT ["dops"]
CMD ["operator"]
