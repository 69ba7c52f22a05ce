#!/bin/bash
# Docker HEALTHCHECK: GET /health on this node's metrics port; healthy on HTTP 200 only.
# Uses bash's /dev/tcp so the image needs no HTTP client. The port comes from
# CONCLAVE_METRICS_LISTEN (the image sets 0.0.0.0:9379); the check always dials loopback.
set -u

port="${CONCLAVE_METRICS_LISTEN:-0.0.0.0:9379}"
port="${port##*:}"

exec 3<>"/dev/tcp/127.0.0.1/${port}" || exit 1
printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 3 status <&3 || exit 1
case "$status" in
    "HTTP/1."[01]" 200 "*) exit 0 ;;
    *) exit 1 ;;
esac
