#!/bin/sh
# The container's entrypoint: derives the node id from a StatefulSet pod's index when no id is
# given, then runs conclaved with the arguments the container was started with.
#
# POD_INDEX (Kubernetes sets it from the label apps.kubernetes.io/pod-index) is 0-based; member
# ids start at 1, so pod conclave-0 is node 1. POD_INDEX is unset before conclaved starts: only
# CONCLAVE_* variables are configuration.
set -eu

if [ -z "${CONCLAVE_NODE_ID:-}" ] && [ -n "${POD_INDEX:-}" ]; then
    case "$POD_INDEX" in
        *[!0-9]*)
            echo "conclave-entrypoint: POD_INDEX=$POD_INDEX is not a number" >&2
            exit 2
            ;;
    esac
    CONCLAVE_NODE_ID=$((POD_INDEX + 1))
    export CONCLAVE_NODE_ID
fi
unset POD_INDEX

exec /usr/local/bin/conclaved "$@"
