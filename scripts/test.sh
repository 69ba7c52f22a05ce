#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every check CI runs.
# On 2 cores it takes about 20 minutes from a cold cache.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-500}
# Every protocol the simulator and the server are built with.
PROTOCOLS=${PROTOCOLS:-raft paxos totem gossip}
SIM_FEATURES=conclave-sim/paxos,conclave-sim/totem,conclave-sim/gossip

step() { printf '\n==> %s\n' "$*"; }

step "system tools (etcdctl, etcd, promtool)"
scripts/install-deps.sh

step "format"
cargo fmt --all -- --check

step "architecture invariants"
scripts/check-architecture.sh

step "deploy files (offline validation: promtool, kubernetes-validate, compose schema, dashboards)"
scripts/validate-deploy.sh

step "clippy"
cargo clippy --workspace --all-targets -F "$SIM_FEATURES" -- -D warnings

step "build (release)"
cargo build --release --workspace -F "$SIM_FEATURES" --bins

step "tests (release: the simulator and end-to-end tests run real work)"
cargo test --release --workspace -F "$SIM_FEATURES"

for protocol in $PROTOCOLS; do
  step "simulator: $protocol, $SEEDS seeds"
  cargo run --release -q -p conclave-sim -F "$SIM_FEATURES" -- --protocol "$protocol" --seeds "$SEEDS"
done
