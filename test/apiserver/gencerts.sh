#!/bin/sh
# Makes the TLS material kproxy's tests use with the API server emulator: a CA
# (ca.crt/ca.key), a server certificate signed by it (server.crt/server.key)
# valid for 127.0.0.1, ::1, localhost and any extra IPs or names given, a client
# certificate for the agent (client.crt/client.key, CN=system:kube-proxy), and
# an unrelated second CA (other-ca.crt/other-ca.key) with a client certificate
# of its own (other-client.crt/other-client.key) for "wrong CA" tests.  Keys are
# ECDSA P-256 unless GENCERTS_KEY=rsa.  Quiet unless something fails.
#
# usage: gencerts.sh OUTDIR [SAN...]
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [SAN...]" >&2
    exit 2
fi
out=$1
shift
mkdir -p "$out"

log=$(mktemp)
trap 'rm -f "$log" "$out"/*.csr "$out"/*.ext "$out"/*.srl' EXIT

run() {
    if ! "$@" >>"$log" 2>&1; then
        echo "gencerts.sh: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

case "${GENCERTS_KEY:-ec}" in
    rsa) newkey="-newkey rsa:2048" ;;
    *) newkey="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1" ;;
esac

# A self-signed CA: NAME CN
make_ca() {
    # shellcheck disable=SC2086
    run openssl req -x509 -new -nodes $newkey -sha256 -days 3650 \
        -keyout "$out/$1.key" -out "$out/$1.crt" -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
}

# A leaf signed by a CA: NAME CA SUBJECT EXTFILE-CONTENT
make_leaf() {
    printf '%s\n' "$4" >"$out/$1.ext"
    # shellcheck disable=SC2086
    run openssl req -new -nodes $newkey -keyout "$out/$1.key" -out "$out/$1.csr" -subj "$3"
    run openssl x509 -req -in "$out/$1.csr" -CA "$out/$2.crt" -CAkey "$out/$2.key" \
        -CAcreateserial -days 3650 -sha256 -out "$out/$1.crt" -extfile "$out/$1.ext"
}

san="IP:127.0.0.1,IP:::1,DNS:localhost"
for extra in "$@"; do
    case "$extra" in
        *:*:* | [0-9]*.[0-9]*.[0-9]*.[0-9]*) san="$san,IP:$extra" ;;
        *) san="$san,DNS:$extra" ;;
    esac
done

make_ca ca kproxy-test-ca
make_leaf server ca "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"
make_leaf client ca "/O=system:node-proxier/CN=system:kube-proxy" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
make_ca other-ca kproxy-other-ca
make_leaf other-client other-ca "/CN=system:kube-proxy" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
chmod 600 "$out"/*.key
