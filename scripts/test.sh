#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every check CI runs.
# On 2 cores it takes about 20 minutes from a cold cache.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-500}

step() { printf '\n==> %s\n' "$*"; }

step "system tools (etcdctl, etcd, promtool)"
scripts/install-deps.sh

step "format"
cargo fmt --all -- --check

step "architecture invariants"
scripts/check-architecture.sh

step "clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "build (release)"
cargo build --release --workspace --all-features --bins

step "tests (release: the simulator and end-to-end tests run real work)"
cargo test --release --workspace --all-features

for protocol in ${PROTOCOLS:-raft paxos totem gossip}; do
  step "simulator: $protocol, $SEEDS seeds"
  cargo run --release -q -p conclave-sim --all-features -- --protocol "$protocol" --seeds "$SEEDS"
done
