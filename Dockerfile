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
# The API listens on loopback (127.0.0.1:7400): reachable from inside the
# container, or by every container of its pod, never from outside, so no
# API port is exposed. KAVACH_ADDR=unix:///var/run/kavach/kavach.sock
# narrows it to the containers that mount the socket (deploy/pod.yaml).
# What is reached from outside is the diagnostic listener, port 9400 on
# every address (IPv4 and IPv6): GET /health, /ready and /metrics without a
# credential, and nothing else, for the kubelet's probes and Prometheus.
# KAVACH_DIAGNOSTIC_ADDR= (empty) turns it off. Give the admin credential
# with KAVACH_ADMIN_KEY: the root filesystem is read-only.
ENV KAVACH_DIAGNOSTIC_ADDR=:9400
EXPOSE 9400
ENTRYPOINT ["/usr/local/bin/kavach"]
CMD ["serve"]
