# The redis-operator image: the one `redis-operator` binary on a minimal, non-root runtime.
#
#   docker build -t ghcr.io/redis-operator/redis-operator:0.1.0 .
#
# The tag is the chart's appVersion (charts/redis-operator/Chart.yaml), which is the image
# the chart deploys by default. See docs/chart.md.

# --- build: the workspace's release binary -------------------------------------------------
FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
# Registry and target caches (BuildKit) keep rebuilds incremental.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin redis-operator \
    && install -D -m 0755 target/release/redis-operator /out/redis-operator

# --- runtime: glibc and CA certificates, no shell, no package manager ----------------------
# kube-rs uses rustls, so no OpenSSL is needed; distroless/cc carries libgcc and glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/redis-operator /usr/local/bin/redis-operator
# 65532 is distroless' "nonroot"; the chart runs the pod as this user with a read-only root
# filesystem (the operator writes nothing to disk).
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/redis-operator"]
CMD ["run", "--listen", "0.0.0.0:9090"]
