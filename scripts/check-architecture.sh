#!/usr/bin/env bash
# Checks the architecture invariants a machine can check (see ARCHITECTURE.md):
# - protocol crates are deterministic and IO-free: no tokio, no RNG crate, no clock, no threads,
#   no files or sockets, in their dependency trees or their sources;
# - only conclave-transport and conclave-etcd (and the binaries) know about gRPC.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
protocols=(conclave-raft conclave-paxos conclave-totem conclave-gossip)
for crate in "${protocols[@]}"; do
  deps=$(cargo tree -q -p "$crate" -e normal --prefix none | awk '{print $1}' | sort -u)
  for banned in tokio rand getrandom mio async-std tonic; do
    if grep -qx "$banned" <<<"$deps"; then
      echo "architecture: $crate depends on $banned (protocol crates must stay IO-free)"; fail=1
    fi
  done
  dir="crates/$crate/src"
  if hits=$(grep -rnE 'std::time|Instant::now|SystemTime|thread_rng|rand::|std::thread|tokio|std::fs|std::net|std::process|std::env' "$dir"); then
    echo "architecture: $crate uses IO, a clock, threads or a thread RNG:"; echo "$hits"; fail=1
  fi
done
for crate in conclave-core conclave-raft conclave-paxos conclave-totem conclave-gossip conclave-storage conclave-kv conclave-node conclave-sim conclave-transport; do
  if cargo tree -q -p "$crate" -e normal --prefix none | awk '{print $1}' | grep -qx tonic; then
    echo "architecture: $crate depends on tonic; only conclave-etcd (the etcd API) and the binaries may"; fail=1
  fi
done
if [ $fail -ne 0 ]; then exit 1; fi
echo "architecture invariants hold"
