# The remex-server image: Debian 12, built with the repository's own scripts.
#
#   docker build -t remex-server .
#   docker run --rm -p 50051:50051 remex-server
#
# No Docker engine runs on our CI machines; the steps below are the ones CI
# runs (scripts/install-deps.sh, scripts/build.sh), and tests/helm (ImageTest)
# checks what can be checked without an engine: the runtime package list
# covers the binary's shared libraries, the user and paths match the chart.

# ---- build: the README's install and build steps, nothing else ----------
FROM debian:12 AS build
WORKDIR /src
# The packages first, so that a source change does not reinstall them.
COPY scripts/install-deps.sh scripts/runtime-packages.txt scripts/
RUN ./scripts/install-deps.sh --build-only
COPY . .
RUN REMEX_BUILD_DIR=/build ./scripts/build.sh --server-only \
 && /build/server/remex-server --version

# ---- runtime: shared libraries only, a fixed non-root user --------------
FROM debian:12-slim
LABEL org.opencontainers.image.title="remex-server" \
      org.opencontainers.image.description="remex: a gRPC remote executor"
COPY scripts/install-deps.sh scripts/runtime-packages.txt /usr/local/share/remex/
RUN /usr/local/share/remex/install-deps.sh --runtime \
 && rm -rf /var/lib/apt/lists/*
# UID/GID 65532 (as distroless' "nonroot"); the chart's runAsUser matches.
RUN groupadd --system --gid 65532 remex \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin remex
COPY --from=build /build/server/remex-server /usr/local/bin/remex-server
USER 65532:65532
# gRPC and Prometheus metrics.
EXPOSE 50051 9464
# tini is PID 1: it forwards SIGTERM (remex-server drains, then exits 0) and
# reaps orphaned grandchildren of process-pool workers.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/remex-server"]
CMD ["--listen=0.0.0.0:50051"]
