"""The benchmark's side of the Kubernetes API: synthetic Services and
EndpointSlices, and a client that talks to the API server emulator inside the
sandbox over one persistent HTTPS connection.

The emulator listens inside the sandbox's "api" namespace, which the host
namespace has no route to.  The client therefore makes its socket inside that
namespace (setns(2) for the duration of one socket() call, signals held) and
then uses it from here; nothing is added to the host's namespace.

Numbering (shared with the ruleset generators in anchors.py):

    Service i      bench/svc-NNNNN, ClusterIP vip(i), port http 80/TCP -> 8080
    endpoint k     fake_endpoint(i, k): 10.128.0.0/10 addresses, never contacted
    Services 0..TARGETS-1 carry traffic: their endpoints are real pods.
"""

import ctypes
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import threading
import time

NAMESPACE = "bench"
PORT = 80
TARGET_PORT = 8080
TARGETS = 2                 # Services 0 and 1 point at real pods (nodes 1 and 2)
IDLE_RECONNECT = 60         # seconds a kept-alive API connection may stay idle
VIP_BASE = int(ipaddress.ip_address("10.96.0.0")) + 16
EP_BASE = int(ipaddress.ip_address("10.128.0.0"))
EXTRA_BASE = int(ipaddress.ip_address("10.200.0.0"))


def service_name(i):
    return f"svc-{i:05d}"


def slice_name(i):
    return f"svc-{i:05d}-b3nch"


def vip(i):
    """ClusterIP of Service i (inside the emulator's 10.96.0.0/16)."""
    if not 0 <= i < 65000:
        raise ValueError("at most 65000 Services fit the service CIDR")
    return str(ipaddress.ip_address(VIP_BASE + i))


def fake_endpoint(i, k, per_service):
    return str(ipaddress.ip_address(EP_BASE + i * per_service + k))


def extra_endpoint(i):
    """The endpoint the incremental test adds to and removes from Service i."""
    return str(ipaddress.ip_address(EXTRA_BASE + i))


def service(i):
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service_name(i), "namespace": NAMESPACE,
                     "labels": {"app": service_name(i)}},
        "spec": {"type": "ClusterIP", "clusterIP": vip(i), "clusterIPs": [vip(i)],
                 "ports": [{"name": "http", "protocol": "TCP", "port": PORT,
                            "targetPort": TARGET_PORT}],
                 "selector": {"app": service_name(i)}},
    }


def endpoint_slice(i, addresses):
    eps = [{"addresses": [a], "conditions": {"ready": True, "serving": True,
                                             "terminating": False},
            "nodeName": "worker"} for a in addresses]
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": slice_name(i), "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": service_name(i),
                                "endpointslice.kubernetes.io/managed-by":
                                    "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "http", "protocol": "TCP", "port": TARGET_PORT}],
    }


def endpoints_of(i, per_service, real=None):
    """Endpoint addresses of Service i: real pod addresses for a target."""
    if real is not None and i < TARGETS:
        return list(real[i])
    return [fake_endpoint(i, k, per_service) for k in range(per_service)]


# ------------------------------------------------------------- namespaces

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()


def socket_in_netns(nspath, family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A socket that lives in the network namespace at nspath."""
    with _lock:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(nspath, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(target, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {nspath}")
            finally:
                os.close(target)
            try:
                return socket.socket(family, kind)
            finally:
                if _libc.setns(home, _CLONE_NEWNET) != 0:
                    os.write(2, b"bench: cannot return to the host network namespace\n")
                    os._exit(70)
        finally:
            os.close(home)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class _Conn(http.client.HTTPSConnection):
    def __init__(self, nspath, host, port, context, timeout):
        super().__init__(host, port, context=context, timeout=timeout)
        self._nspath = nspath
        self._ctx = context

    def connect(self):
        sock = socket_in_netns(self._nspath)
        try:
            sock.settimeout(self.timeout)
            sock.connect((self.host, self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = self._ctx.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class ApiError(Exception):
    pass


class Api:
    """A persistent HTTPS connection to the emulator, made inside its namespace."""

    def __init__(self, nspath, host, port, cafile, token, timeout=120):
        ctx = ssl.create_default_context(cafile=cafile)
        self._conn = _Conn(nspath, host, port, ctx, timeout)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                         "Accept": "application/json"}
        self._last = time.monotonic()

    def close(self):
        self._conn.close()

    def request(self, method, path, body=None, ok=(200, 201)):
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        # the emulator drops keep-alive connections idle for 300 s: start a
        # fresh one well before that
        if time.monotonic() - self._last > IDLE_RECONNECT:
            self._conn.close()
        for attempt in (1, 2):
            try:
                self._conn.request(method, path, body=data, headers=self._headers)
                resp = self._conn.getresponse()
                payload = resp.read()
                break
            except (http.client.HTTPException, ssl.SSLError, OSError):
                # a connection that broke: once more on a new one
                self._conn.close()
                if attempt == 2:
                    raise
                if method == "POST":
                    ok = tuple(ok) + (409,)     # the first try may have created it
        self._last = time.monotonic()
        if resp.status not in ok:
            raise ApiError(f"{method} {path}: HTTP {resp.status}: {payload[:300]!r}")
        return payload

    def get_json(self, path):
        return json.loads(self.request("GET", path))

    # ----- objects

    def create_service(self, i):
        self.request("POST", f"/api/v1/namespaces/{NAMESPACE}/services", service(i))

    def create_slice(self, i, addresses):
        self.request("POST", f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
                     endpoint_slice(i, addresses))

    def replace_slice(self, i, addresses):
        self.request("PUT", f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices/"
                     f"{slice_name(i)}", endpoint_slice(i, addresses))

    def load(self, start, stop, per_service, real=None, progress=None):
        """Creates Services start..stop-1 with their EndpointSlices."""
        for i in range(start, stop):
            self.create_service(i)
            self.create_slice(i, endpoints_of(i, per_service, real))
            if progress and (i + 1) % 1000 == 0:
                progress(i + 1)

    def list_all(self, path, page=500):
        """Lists a collection page by page as a client would; returns the item count."""
        n, cont = 0, ""
        while True:
            q = f"?limit={page}" + (f"&continue={cont}" if cont else "")
            doc = self.get_json(path + q)
            n += len(doc.get("items") or [])
            cont = (doc.get("metadata") or {}).get("continue") or ""
            if not cont:
                return n


def timed_list(api):
    """Seconds a paged list of every Service and EndpointSlice takes from the emulator."""
    t0 = time.monotonic()
    api.list_all("/api/v1/services")
    api.list_all("/apis/discovery.k8s.io/v1/endpointslices")
    return time.monotonic() - t0
