# syntax=docker/dockerfile:1
# The cnredis image: one static binary that runs as the operator (`cnredis controller`) and is copied into
# every database pod by `cnredis bootstrap`, where it runs as the instance manager.
#
#   docker build -t cnredis/cnredis:dev .

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# .cargo/config.toml builds for x86_64-unknown-linux-gnu with +crt-static, so the binary is static and
# lands under target/x86_64-unknown-linux-gnu/. It is copied out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cnredis \
    && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/cnredis /out/cnredis

# distroless/static rather than scratch: the binary needs no libc, but distroless still brings CA
# certificates, tzdata and an /etc/passwd with a non-root user, and no shell or package manager. Its
# "nonroot" user is uid/gid 65532; the Helm chart's runAsUser/runAsGroup/fsGroup use the same ids.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="cnredis" \
      org.opencontainers.image.description="Kubernetes operator for Valkey and Redis" \
      org.opencontainers.image.source="https://github.com/cnredis/cnredis" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/cnredis /usr/local/bin/cnredis
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cnredis"]
