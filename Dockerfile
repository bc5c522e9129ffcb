# hookgate's container image: the release binary on a distroless base, run as a non-root user.
#
#   docker build -t hookgate .
#   docker run --rm hookgate --help
#
# The binary needs no OpenSSL and no CA bundle: TLS is rustls with Mozilla's roots compiled in,
# and the database migrations are compiled in too. docs/deploy.md shows it in use.

FROM rust:1-slim-bookworm AS build
# aws-lc-rs (rustls's crypto) builds its C sources with cmake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The caches keep downloaded crates and compiled dependencies between image builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin hookgate \
    && install -m 755 target/release/hookgate /usr/local/bin/hookgate

# glibc and libgcc, nothing else: no shell, no package manager. Its "nonroot" user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/hookgate /usr/local/bin/hookgate
USER nonroot
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/hookgate"]
CMD ["--config", "/etc/hookgate/hookgate.toml", "run"]
