# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Go toolchain through scripts/build.sh
# (the same script CI uses), then ship only the static binary on a minimal,
# non-root base image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git is not in the build context: pass the version in,
# e.g. docker build --build-arg KBRIDGE_VERSION=$(git describe --tags --always) .
ARG KBRIDGE_VERSION=dev
RUN KBRIDGE_VERSION="${KBRIDGE_VERSION}" scripts/build.sh /out/kbridge

# distroless/static: no shell, no package manager, CA certificates for TLS
# to the brokers, and the non-root user 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kbridge /kbridge
USER nonroot:nonroot
# gRPC API, REST API, admin (health, metrics, OpenAPI).
EXPOSE 50051 50052 50053
ENTRYPOINT ["/kbridge"]
