#!/usr/bin/env python3
"""Kubernetes API server emulator for kproxy's tests (Python 3 standard library only).

No real kube-apiserver can run on the test machines, so this program serves
the parts of its HTTP API that kproxy and kubectl use: core/v1 and a few API
groups with get, list (limit/continue), watch (chunked JSON lines,
resourceVersion, bookmarks, timeoutSeconds, label and field selectors, 410
Expired), create, replace, patch, delete, Service defaulting with ClusterIP
and NodePort allocation, discovery documents, bearer tokens, client
certificates and TLS.  Tests can make it misbehave through POST
/emulator/faults.  The implementation lives in the emu/ package beside this
file; see README.md there for the options and the fault API.
"""

import argparse
import os
import signal
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu.api import Api  # noqa: E402
from emu.server import EmulatorServer, Options  # noqa: E402
from emu.services import Allocator  # noqa: E402
from emu.store import Store  # noqa: E402


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Kubernetes API server emulator for kproxy's tests")
    ap.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1; '::' allowed)")
    ap.add_argument("--port", type=int, default=6443, help="port (default 6443; 0 picks a free one)")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    ap.add_argument("--client-ca", help="accept client certificates signed by this CA as authentication")
    ap.add_argument("--token", action="append", default=[], help="accepted bearer token (repeatable)")
    ap.add_argument("--token-file", help="file of accepted tokens, one per line (first CSV field), re-read per request")
    ap.add_argument("--history", type=int, default=10000, help="events kept for watches and continue (default 10000)")
    ap.add_argument("--service-cluster-ip-range", default="10.96.0.0/16,fd00:96::/112",
                    help="CIDR[,CIDR] for cluster IPs (default 10.96.0.0/16,fd00:96::/112)")
    ap.add_argument("--service-node-port-range", default="30000-32767", help="A-B (default 30000-32767)")
    ap.add_argument("--bookmark-interval", type=float, default=10.0,
                    help="seconds between BOOKMARK events on watches that allow them (default 10)")
    ap.add_argument("--server-version", default="v1.32.4", help="gitVersion reported by /version (default v1.32.4)")
    ap.add_argument("--no-aggregated-discovery", action="store_true",
                    help="serve only the legacy discovery documents (clients fall back to them)")
    ap.add_argument("--log", help="append a request log to this file")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        ap.error("--client-ca needs --tls-cert/--tls-key")
    return args


def tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    ctx.set_alpn_protocols(["http/1.1"])
    if args.client_ca:
        ctx.load_verify_locations(cafile=args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def main(argv=None):
    args = parse_args(argv)
    try:
        alloc = Allocator(args.service_cluster_ip_range, args.service_node_port_range)
    except ValueError as e:
        print(f"apiserver: {e}", file=sys.stderr)
        return 2
    api = Api(Store(args.history), alloc)
    api.bootstrap()
    opts = Options(tokens=args.token, token_file=args.token_file, client_ca=args.client_ca,
                   bookmark_interval=args.bookmark_interval, server_version=args.server_version,
                   log_file=args.log, aggregated_discovery=not args.no_aggregated_discovery)
    try:
        ctx = tls_context(args) if args.tls_cert else None
    except (OSError, ssl.SSLError) as e:
        print(f"apiserver: TLS set-up failed: {e}", file=sys.stderr)
        return 2
    try:
        server = EmulatorServer(args.bind, args.port, api, opts, ctx)
    except OSError as e:
        print(f"apiserver: cannot listen on {args.bind} port {args.port}: {e}", file=sys.stderr)
        return 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="serve", daemon=True)
    thread.start()
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    server.log(f"listening on {args.bind} port {port} ({'https' if ctx else 'http'})")
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
