#!/usr/bin/env bash
# Installs the system tools the tests and the lab use: etcdctl and etcd 3.4 (Debian's
# etcd-client and etcd-server), Prometheus with promtool (Debian's prometheus), and what the
# lab's plots (plotters) need to build and to draw text: fontconfig and freetype headers,
# pkg-config, and a font (DejaVu); openssl for the test CA script.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

need=()
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# scripts/make-test-ca.sh, which the TLS tests run.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
for package in pkg-config libfontconfig1-dev libfreetype-dev fonts-dejavu-core; do
  dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
done
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${need[*]}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's packages may start their services; the tests start their own on loopback.
for service in etcd prometheus; do
  $sudo service "$service" stop >/dev/null 2>&1 || true
done
