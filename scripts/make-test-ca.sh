#!/usr/bin/env bash
# Makes a local test CA and every certificate a Conclave cluster of N nodes needs, with openssl.
# For local clusters and tests: the CA keys sit beside the certificates, unencrypted. For a real
# deployment use your own PKI and follow the same names (docs/security.md).
#
#   scripts/make-test-ca.sh DIR [N]        N nodes, default 3
#
# DIR gets:
#   ca.pem ca.key              the client-facing CA: signs the nodes' server certificates and the
#                              client certificate (tls.client_ca, etcdctl --cacert)
#   peer-ca.pem peer-ca.key    the peer CA: signs the peer certificates (tls.peer_ca)
#   node-<id>/server.pem .key  node <id>'s etcd API certificate (tls.client_cert, tls.client_key):
#                              SAN IP 127.0.0.1, ::1 and DNS localhost, plus $SERVER_SANS
#   node-<id>/peer.pem .key    node <id>'s peer certificate (tls.peer_cert, tls.peer_key): SAN DNS
#                              node-<id>.conclave, usable as server and as client
#   client.pem client.key      a client certificate for etcdctl (--cert, --key), CN conclave-client
#
# Environment: SERVER_SANS extra subjectAltName entries for the server certificates, e.g.
# "DNS:conclave-1.example,IP:10.0.0.5"; DAYS validity in days (default 825).
# An existing DIR is reused: its CAs are kept and the node and client certificates remade.
set -euo pipefail

usage() {
  echo "usage: $0 DIR [N]   (N nodes, default 3)" >&2
  exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
dir=$1
nodes=${2:-3}
case $nodes in
'' | *[!0-9]*) usage ;;
esac
[ "$nodes" -ge 1 ] || usage
days=${DAYS:-825}
command -v openssl >/dev/null 2>&1 || {
  echo "make-test-ca: openssl is not installed (Debian: apt-get install openssl)" >&2
  exit 1
}

mkdir -p "$dir"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# An EC P-256 key in PKCS#8, which rustls and Go's crypto/tls both read.
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME SUBJECT: a self-signed CA certificate, unless NAME.pem already exists.
ca() {
  [ -f "$dir/$1.pem" ] && [ -f "$dir/$1.key" ] && return
  key "$dir/$1.key"
  openssl req -x509 -new -key "$dir/$1.key" -sha256 -days "$days" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$dir/$1.pem"
}

# leaf CA OUT CN EKU SAN: a certificate signed by CA, written to OUT.pem and OUT.key.
leaf() {
  local issuer=$1 out=$2 cn=$3 eku=$4 san=$5
  key "$out.key"
  openssl req -new -key "$out.key" -subj "/CN=$cn" -out "$work/req.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    echo "authorityKeyIdentifier=keyid"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$work/ext.cnf"
  openssl x509 -req -in "$work/req.csr" -CA "$dir/$issuer.pem" -CAkey "$dir/$issuer.key" \
    -CAcreateserial -sha256 -days "$days" -extfile "$work/ext.cnf" -out "$out.pem" 2>/dev/null
}

ca ca "Conclave test client CA"
ca peer-ca "Conclave test peer CA"
server_sans="IP:127.0.0.1,IP:::1,DNS:localhost${SERVER_SANS:+,$SERVER_SANS}"
for id in $(seq 1 "$nodes"); do
  mkdir -p "$dir/node-$id"
  leaf ca "$dir/node-$id/server" "conclave node $id" serverAuth "$server_sans"
  # The peer certificate names the node (docs/security.md): each member checks that a peer's
  # certificate names the node id it claims, and that the node it dials answers with that name.
  leaf peer-ca "$dir/node-$id/peer" "node-$id.conclave" serverAuth,clientAuth "DNS:node-$id.conclave"
done
leaf ca "$dir/client" conclave-client clientAuth ""
# Certificates are public; keys stay private to the user.
chmod 644 "$dir"/*.pem "$dir"/node-*/*.pem
rm -f "$dir"/*.srl
echo "made a test CA and certificates for $nodes node(s) in $dir"
