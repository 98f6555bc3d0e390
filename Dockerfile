# syntax=docker/dockerfile:1
# Multi-stage build: a static, cgo-free binary (modernc.org/sqlite is pure Go)
# on a distroless base, running as an unprivileged user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kavach ./cmd/kavach \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kavach /usr/local/bin/kavach
# The embedded SQLite default lives on a volume owned by the nonroot user.
COPY --from=build --chown=65532:65532 /out/data /var/lib/kavach
VOLUME /var/lib/kavach
ENV KAVACH_DATABASE_URL=/var/lib/kavach/kavach.db
USER 65532:65532
# As a sidecar it listens on the pod's loopback (127.0.0.1:7400), reachable
# by every container of the pod; KAVACH_ADDR=unix:///var/run/kavach/kavach.sock
# narrows that to those that mount the socket (deploy/pod.yaml). Give the
# admin credential with KAVACH_ADMIN_KEY: the root filesystem is read-only.
EXPOSE 7400
ENTRYPOINT ["/usr/local/bin/kavach"]
CMD ["serve"]
