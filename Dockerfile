# syntax=docker/dockerfile:1
#
# fly-autoscaler as a container image: a static binary on distroless.
#
#   docker build -t fly-autoscaler \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse --short HEAD)" .
#   docker run --rm fly-autoscaler demo
#
# .dockerignore keeps .git out of the context, so the version and commit come
# in as build arguments; without them the binary says "dev" and "unknown".

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
# go.mod replaces genqlient with scale/flyapi/genqlient, whose go.mod the
# download reads.
COPY go.mod go.sum ./
COPY scale/flyapi/genqlient/go.mod scale/flyapi/genqlient/
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# The Makefile's build target: CGO_ENABLED=0, -trimpath, and the version and
# commit stamped with -ldflags -X, as for a local make build.
RUN make build BIN=/out/fly-autoscaler VERSION="$VERSION" COMMIT="$COMMIT"

# distroless/static: CA certificates (the Fly API and Prometheus are HTTPS),
# tzdata, /etc/passwd with a nonroot user, and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fly-autoscaler /usr/local/bin/fly-autoscaler
USER nonroot:nonroot
ENTRYPOINT ["fly-autoscaler"]
# One run, configured through FAS_* variables; override the command for
# anything else: "run --every 30s", "demo", "version".
CMD ["run"]
