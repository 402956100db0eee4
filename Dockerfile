# syntax=docker/dockerfile:1
#
# azwi-webhook container image.
#
#   docker build -t ghcr.io/azwi-webhook/azwi-webhook:0.1.0 \
#     --build-arg AZWI_GIT_COMMIT="$(git rev-parse HEAD)" \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" .
#
# .git is not part of the build context (.dockerignore), so build.rs cannot ask git: without the
# two build arguments `azwi-webhook version` and the azwi_build_info metric say commit "unknown"
# and the time of the build.
#
# Build stage: Debian 12 (bookworm) Rust toolchain. The cache mounts keep the
# cargo registry and target directory between builds (BuildKit).
FROM rust:1-bookworm AS builder
WORKDIR /src
ARG AZWI_GIT_COMMIT=unknown
ARG SOURCE_DATE_EPOCH
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin azwi-webhook \
 && install -D -m 0755 target/release/azwi-webhook /out/azwi-webhook \
 && ln -s /azwi-webhook /out/manager

# Runtime stage: distroless "cc", not "static". The binary is built for the
# default x86_64/aarch64-unknown-linux-gnu target, so it is dynamically linked
# against glibc (and libgcc_s for unwinding); static-debian12 has no libc and
# the binary would not even start. cc-debian12 ships exactly glibc + libgcc +
# CA certificates, from the same Debian release as the builder (glibc 2.36).
# TLS is rustls (ring), so no OpenSSL is needed at run time. (A musl build,
# target x86_64-unknown-linux-musl, would allow static-debian12 instead.)
# The :nonroot tag runs as 65532; we also say so explicitly, numerically, so
# that runAsNonRoot can verify it.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="azwi-webhook" \
      org.opencontainers.image.description="Mutating admission webhook for Azure Workload Identity and AKS identity binding" \
      org.opencontainers.image.licenses="MIT"
# /manager is the path upstream's chart and static manifests run (`command: /manager`): a symlink,
# so an upgrade that keeps their command still starts this binary (COPY keeps the link).
COPY --from=builder /out/ /
USER 65532:65532
# webhook (TLS), health, metrics
EXPOSE 9443 9440 8095
ENTRYPOINT ["/azwi-webhook"]
CMD ["serve"]
