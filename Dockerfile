# syntax=docker/dockerfile:1

# The collector image: a static Go build on distroless, running as the non-root user 65532.
# It holds three binaries:
#   /collector       the service (the entrypoint); configured by COLLECTOR_* variables
#   /greenhouse-sim  the Greenhouse simulator, for demos (`--entrypoint /greenhouse-sim`)
#   /healthcheck     a tiny HTTP probe for docker-compose healthchecks (no shell or curl here)
#
# Build from the repository root:  docker build -t greenhouse-collector .
# See deploy/README.md for docker-compose and Kubernetes.

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/collector ./cmd/greenhouse-sim ./deploy/healthcheck \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/collector /collector
COPY --from=build /out/greenhouse-sim /greenhouse-sim
COPY --from=build /out/healthcheck /healthcheck
# Data directory of the embedded NATS server (single-node mode only, when COLLECTOR_NATS_URL is
# empty), owned by the runtime user so that a volume mounted here is writable.
COPY --from=build --chown=65532:65532 /out/data /data
ENV COLLECTOR_DATA_DIR=/data
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/collector"]
