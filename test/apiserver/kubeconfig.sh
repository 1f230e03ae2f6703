#!/bin/sh
# Writes a kubeconfig for kproxy's tests: one cluster (SERVER_URL, trusting
# CA_FILE), one user (a bearer TOKEN and/or a client certificate), one context,
# and current-context set to it.  kubectl and the kproxy agent both read it.
#
# usage: kubeconfig.sh OUT SERVER_URL CA_FILE TOKEN [options]
#   CA_FILE "-" or "": no CA (use --insecure or the system roots)
#   TOKEN   "-" or "": no token
# options:
#   --client-cert FILE --client-key FILE   authenticate with a client certificate
#   --inline          embed CA, certificate and key as *-data (base64) instead of paths
#   --insecure        insecure-skip-tls-verify: true
#   --name NAME       name of the cluster, user and context (default kproxy-test)
#   --namespace NS    default namespace of the context
set -eu

usage() {
    echo "usage: $0 OUT SERVER_URL CA_FILE TOKEN [--client-cert F --client-key F] [--inline] [--insecure] [--name N] [--namespace NS]" >&2
    exit 2
}
[ $# -ge 4 ] || usage
out=$1 server=$2 ca=$3 token=$4
shift 4
cert="" key="" inline=0 insecure=0 name=kproxy-test namespace=""
while [ $# -gt 0 ]; do
    case "$1" in
        --client-cert) [ $# -ge 2 ] || usage; cert=$2; shift 2 ;;
        --client-key) [ $# -ge 2 ] || usage; key=$2; shift 2 ;;
        --inline) inline=1; shift ;;
        --insecure) insecure=1; shift ;;
        --name) [ $# -ge 2 ] || usage; name=$2; shift 2 ;;
        --namespace) [ $# -ge 2 ] || usage; namespace=$2; shift 2 ;;
        *) usage ;;
    esac
done
[ "$ca" = "-" ] && ca=""
[ "$token" = "-" ] && token=""
if [ -n "$cert" ] && [ -z "$key" ] || [ -z "$cert" ] && [ -n "$key" ]; then
    echo "kubeconfig.sh: --client-cert and --client-key go together" >&2
    exit 2
fi
for f in "$ca" "$cert" "$key"; do
    if [ -n "$f" ] && [ ! -r "$f" ]; then
        echo "kubeconfig.sh: cannot read $f" >&2
        exit 1
    fi
done

abspath() {
    case "$1" in
        /*) printf '%s' "$1" ;;
        *) printf '%s/%s' "$(pwd)" "$1" ;;
    esac
}

# file_entry KEY FILE: "key: /abs/path" or "key-data: base64"
file_entry() {
    if [ "$inline" = 1 ]; then
        printf '%s-data: %s\n' "$1" "$(base64 -w0 <"$2")"
    else
        printf '%s: %s\n' "$1" "$(abspath "$2")"
    fi
}

tmp="$out.tmp.$$"
{
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    echo "- cluster:"
    [ -n "$ca" ] && printf '    %s' "$(file_entry certificate-authority "$ca")" && echo
    [ "$insecure" = 1 ] && echo "    insecure-skip-tls-verify: true"
    echo "    server: $server"
    echo "  name: $name"
    echo "contexts:"
    echo "- context:"
    echo "    cluster: $name"
    [ -n "$namespace" ] && echo "    namespace: $namespace"
    echo "    user: $name"
    echo "  name: $name"
    echo "current-context: $name"
    echo "preferences: {}"
    echo "users:"
    echo "- name: $name"
    if [ -z "$token$cert" ]; then
        echo "  user: {}"
    else
        echo "  user:"
        [ -n "$cert" ] && printf '    %s' "$(file_entry client-certificate "$cert")" && echo
        [ -n "$key" ] && printf '    %s' "$(file_entry client-key "$key")" && echo
        [ -n "$token" ] && echo "    token: $token"
    fi
    true
} >"$tmp"
chmod 600 "$tmp"
mv "$tmp" "$out"
