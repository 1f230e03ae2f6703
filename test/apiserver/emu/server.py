"""HTTP side of the emulator: the threaded server, routing, auth, watches, faults.

EmulatorServer is a threaded HTTP/1.1 server (optionally TLS, with optional
client certificates) that never does reverse DNS.  Handler authenticates each
request (bearer token or verified client certificate), applies injected
faults, routes the real API server's paths to Api, negotiates JSON, Table and
aggregated discovery answers, and serves watches as chunked streams of JSON
lines.  Each watch runs in its own thread and waits on the store's condition
variable; fault actions that act on open watches are queued to every
watcher and carried out by the watch thread itself.
"""

import collections
import http.server
import json
import select
import socket
import socketserver
import ssl
import threading
import time
import traceback
from urllib.parse import parse_qs, urlsplit

from . import errors, resources
from .api import Matcher, list_kind
from .errors import ApiError, bad_request
from .faults import Faults
from .store import ADDED, DELETED, MODIFIED

WATCH_ACTIONS = ("drop-watches", "garbage", "truncate", "huge-line")
MAX_BODY = 64 << 20


class Watcher:
    """One open watch stream, as seen by the fault actions and /emulator/watches."""

    def __init__(self, res, ns):
        self.res = res
        self.ns = ns
        self.controls = []      # [(action, spec, threading.Event)]


class Options:
    """Settings of one emulator instance (filled from the command line)."""

    def __init__(self, **kw):
        self.tokens = kw.get("tokens") or []
        self.token_file = kw.get("token_file")
        self.client_ca = kw.get("client_ca")
        self.bookmark_interval = float(kw.get("bookmark_interval", 10))
        self.server_version = kw.get("server_version", "v1.32.4")
        self.log_file = kw.get("log_file")
        self.aggregated_discovery = kw.get("aggregated_discovery", True)


def _media_types(accept):
    """Parse an Accept header into [(type, {param: value})] in order."""
    out = []
    for part in (accept or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        params = {}
        for f in fields[1:]:
            k, _, v = f.partition("=")
            params[k.strip().lower()] = v.strip()
        out.append((fields[0].lower(), params))
    return out


class EmulatorServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, host, port, api, opts, ssl_ctx=None):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.api = api
        self.store = api.store
        self.opts = opts
        self.ssl_ctx = ssl_ctx
        self.faults = Faults()
        self.requests = collections.deque(maxlen=5000)
        self.log_lock = threading.Lock()
        self.log_fh = open(opts.log_file, "a", buffering=1) if opts.log_file else None
        super().__init__((host, port), Handler)

    def server_bind(self):
        # No getfqdn(): a reverse DNS look-up can stall for a long time.
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    def get_request(self):
        # Nagle off, as a real API server (Go) has it: otherwise a response
        # written in two pieces waits for the client's delayed ACK, ~40 ms.
        sock, addr = super().get_request()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return sock, addr

    def finish_request(self, request, client_address):
        if self.ssl_ctx is None:
            self.RequestHandlerClass(request, client_address, self)
            return
        try:
            request.settimeout(10)
            conn = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log(f"{client_address[0]} TLS handshake failed: {e}")
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if self.log_fh:
            self.log(f"{client_address[0]} error:\n{traceback.format_exc()}")

    def log(self, line):
        if self.log_fh:
            with self.log_lock:
                self.log_fh.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def valid_tokens(self):
        toks = set(self.opts.tokens)
        if self.opts.token_file:
            try:
                with open(self.opts.token_file) as f:
                    for line in f:
                        line = line.strip()
                        if line and not line.startswith("#"):
                            toks.add(line.split(",")[0].strip().strip('"'))
            except OSError:
                pass
        return toks

    @property
    def auth_required(self):
        return bool(self.opts.tokens or self.opts.token_file or self.opts.client_ca)

    def broadcast(self, action, spec, wait=10.0):
        """Queue a watch fault to every open watch and wait until they carried it out."""
        st = self.store
        done = []
        with st.cond:
            for w in list(st.watchers):
                ev = threading.Event()
                w.controls.append((action, spec, ev))
                done.append(ev)
            st.cond.notify_all()
        deadline = time.monotonic() + wait
        for ev in done:
            ev.wait(max(0.0, deadline - time.monotonic()))
        return len(done)

    def watch_counts(self):
        counts = {}
        with self.store.cond:
            for w in self.store.watchers:
                counts[w.res.plural] = counts.get(w.res.plural, 0) + 1
        return counts

    def stop(self):
        st = self.store
        with st.cond:
            st.stop()
            # Give open watches a moment to send their final chunk.
            deadline = time.monotonic() + 2
            while st.watchers and time.monotonic() < deadline:
                st.cond.wait(0.05)
        self.shutdown()
        self.server_close()
        if self.log_fh:
            self.log_fh.close()
            self.log_fh = None


class _Closed(Exception):
    """The watch stream is over (client gone or closed on purpose)."""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kproxy-apiserver-emulator"
    sys_version = ""
    timeout = 300           # idle keep-alive connections and stuck writes

    # ------------------------------------------------------------ plumbing

    def address_string(self):
        return str(self.client_address[0])

    def log_message(self, fmt, *args):
        self.server.log(f"{self.address_string()} {fmt % args}")

    def log_request(self, code="-", size="-"):
        self._code = code

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, "RequestEntityTooLarge", "request body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(16)
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "RequestEntityTooLarge", "request body too large")
        return self.rfile.read(n) if n > 0 else b""

    def send_bytes(self, code, data, ctype="application/json", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, code, obj, headers=None, ctype="application/json"):
        data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        self.send_bytes(code, data, ctype, headers)

    # ------------------------------------------------------------ dispatch

    def dispatch(self, method):
        t0 = time.monotonic()
        self._code = None
        url = urlsplit(self.path)
        path = url.path or "/"
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            try:
                body = self.read_body()
            except (ValueError, OSError):
                self.close_connection = True
                raise bad_request("could not read the request body")
            if not self.authenticated():
                raise errors.unauthorized()
            if path.startswith("/emulator/"):
                self.control(method, path, body)
            else:
                delay, fault = self.server.faults.take(method, path)
                if delay:
                    time.sleep(delay)
                if fault:
                    raise errors.injected(fault.status, fault.retry_after)
                self.route(method, path, params, body)
        except ApiError as e:
            self.send_json(e.code, e.status(), e.headers)
        except (BrokenPipeError, ConnectionResetError, _Closed, socket.timeout, ssl.SSLError):
            self.close_connection = True
        except Exception:
            self.server.log(f"internal error on {method} {self.path}:\n{traceback.format_exc()}")
            try:
                self.send_json(500, errors.status_object(500, "InternalError", "internal error in the emulator"))
            except OSError:
                self.close_connection = True
        code = self._code or "-"
        self.server.requests.append({"method": method, "path": path, "query": url.query,
                                     "code": code, "time": time.time()})
        self.server.log(f"{self.address_string()} {method} {self.path} {code} "
                        f"{time.monotonic() - t0:.3f}s")

    def authenticated(self):
        srv = self.server
        if not srv.auth_required:
            return True
        if srv.opts.client_ca and isinstance(self.connection, ssl.SSLSocket):
            try:
                if self.connection.getpeercert():
                    return True
            except ValueError:
                pass
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip() in srv.valid_tokens()
        return False

    def route(self, method, path, params, body):
        segs = [s for s in path.split("/") if s]
        if path.rstrip("/") in ("/healthz", "/livez", "/readyz") or (
                len(segs) >= 2 and segs[0] in ("healthz", "livez", "readyz")):
            return self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
        if path.rstrip("/") == "/version":
            return self.send_json(200, self.version())
        if not segs or segs[0] not in ("api", "apis"):
            raise errors.no_route()
        if segs[0] == "api":
            if len(segs) == 1:
                return self.discovery_root(core=True)
            group, version, rest = "", segs[1], segs[2:]
            if version != "v1":
                raise errors.no_route()
        else:
            if len(segs) == 1:
                return self.discovery_root(core=False)
            group = segs[1]
            if len(segs) == 2:
                doc = resources.api_group(group)
                if doc is None or method != "GET":
                    raise errors.no_route()
                return self.send_json(200, doc)
            version, rest = segs[2], segs[3:]
        if not rest:
            doc = resources.api_resource_list(group, version)
            if doc is None or method != "GET":
                raise errors.no_route()
            return self.send_json(200, doc)
        legacy_watch = rest[0] == "watch"
        if legacy_watch:
            rest = rest[1:]
        res, ns, name, sub = self.parse_resource_path(group, version, rest)
        if method == "GET":
            if name is None:
                if legacy_watch or params.get("watch") in ("true", "1"):
                    return self.serve_watch(res, ns, params)
                return self.serve_list(res, ns, params)
            if legacy_watch:
                params = dict(params, fieldSelector=f"metadata.name={name}")
                return self.serve_watch(res, ns, params)
            return self.send_obj(200, res, self.server.api.get(res, ns, name))
        if legacy_watch:
            raise errors.method_not_allowed(method)
        api = self.server.api
        if method == "POST":
            if name is not None:
                raise errors.method_not_allowed(method)
            return self.send_obj(201, res, api.create(res, ns, self.json_body(body), params))
        if name is None:
            if method == "DELETE":
                return self.send_json(200, api.delete_collection(res, ns, params))
            raise errors.method_not_allowed(method)
        if method == "PUT":
            return self.send_obj(200, res, api.replace(res, ns, name, self.json_body(body), sub, params))
        if method == "PATCH":
            code, obj = api.patch(res, ns, name, body, self.headers.get("Content-Type"), sub, params)
            return self.send_obj(code, res, obj)
        if method == "DELETE":
            if sub is not None:
                raise errors.method_not_allowed(method)
            return self.send_obj(200, res, api.delete(res, ns, name, body, params))
        raise errors.method_not_allowed(method)

    @staticmethod
    def parse_resource_path(group, version, rest):
        """(resource, namespace, name, subresource) of the path after the group version."""
        ns = name = sub = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            res = resources.lookup(group, version, rest[2])
            if res is not None and res.namespaced:
                ns = rest[1]
                tail = rest[3:]
            else:
                res, tail = None, []
        else:
            res = None
        if res is None:
            res = resources.lookup(group, version, rest[0])
            if res is None:
                raise errors.no_route()
            tail = rest[1:]
            if res.namespaced and tail:
                raise errors.no_route()
        if len(tail) > 2:
            raise errors.no_route()
        if tail:
            name = tail[0]
        if len(tail) == 2:
            sub = tail[1]
            if sub not in res.subresources:
                raise errors.no_route()
        return res, ns, name, sub

    @staticmethod
    def json_body(body):
        try:
            return json.loads(body or b"null")
        except ValueError as e:
            raise bad_request(f"the body of the request is not valid JSON: {e}") from None

    def version(self):
        v = self.server.opts.server_version.lstrip("v")
        major, minor = (v.split(".") + ["0", "0"])[:2]
        return {"major": major, "minor": minor, "gitVersion": "v" + v,
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
                "platform": "linux/amd64", "emulationMajor": major, "emulationMinor": minor,
                "minCompatibilityMajor": major, "minCompatibilityMinor": minor}

    # ------------------------------------------------------------ responses

    def table_version(self):
        """meta.k8s.io version when the client prefers a Table answer, else None."""
        for mt, params in _media_types(self.headers.get("Accept")):
            if mt == "application/json" and params.get("as") == "Table" \
                    and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                return params["v"]
            if mt in ("application/json", "*/*", "application/*") and "as" not in params:
                return None
        return None

    def send_obj(self, code, res, obj):
        tv = self.table_version()
        if tv:
            include = self._include_object()
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            return self.send_json(code, resources.table(res, [obj], meta, include, tv))
        self.send_json(code, obj)

    def _include_object(self):
        inc = parse_qs(urlsplit(self.path).query).get("includeObject", ["Metadata"])[-1]
        return inc if inc in ("None", "Metadata", "Object") else "Metadata"

    def discovery_root(self, core):
        accept = self.headers.get("Accept") if self.server.opts.aggregated_discovery else ""
        for mt, params in _media_types(accept):
            if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io" \
                    and params.get("v") in resources.AGGREGATED_VERSIONS:
                v = params["v"]
                return self.send_json(200, resources.aggregated(core, v),
                                      ctype=f"application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
            if "as" not in params:
                break
        if core:
            try:
                host, port = self.connection.getsockname()[:2]
            except OSError:
                host, port = self.server.server_address[:2]
            if host.startswith("::ffff:") and "." in host:
                host = host[7:]
            addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            return self.send_json(200, resources.api_versions(addr))
        return self.send_json(200, resources.api_group_list())

    def serve_list(self, res, ns, params):
        meta, items = self.server.api.list(res, ns, params)
        tv = self.table_version()
        if tv:
            return self.send_json(200, resources.table(res, items, meta, self._include_object(), tv))
        self.send_json(200, {"kind": list_kind(res), "apiVersion": res.api_version,
                             "metadata": meta, "items": items})

    # ------------------------------------------------------------ watches

    def write_chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def write_event(self, etype, obj):
        line = json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n"
        self.write_chunk(line)

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")

    def abort_stream(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Closed()

    def peer_closed(self):
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        try:
            sock.settimeout(0)
            data = sock.recv(1)
            return data == b""
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            return False
        except (OSError, ssl.SSLError):
            return True
        finally:
            try:
                sock.settimeout(self.timeout)
            except OSError:
                pass

    def serve_watch(self, res, ns, params):
        st = self.server.store
        match = Matcher(res, ns, params)
        timeout = params.get("timeoutSeconds") or ""
        try:
            timeout = float(timeout) if timeout else None
        except ValueError:
            raise bad_request(f"invalid value for timeoutSeconds: {timeout!r}") from None
        bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
        rv_param = params.get("resourceVersion") or ""
        initial_events = params.get("sendInitialEvents")
        if initial_events not in (None, "", "true", "false"):
            raise bad_request("sendInitialEvents must be true or false")
        send_initial = initial_events == "true"
        if send_initial and (params.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
            raise bad_request("sendInitialEvents=true requires resourceVersionMatch=NotOlderThan "
                              "and allowWatchBookmarks=true")
        if not send_initial and params.get("resourceVersionMatch"):
            raise bad_request("resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")
        table_v = self.table_version()
        include = self._include_object()
        self.server.log(f"{self.address_string()} WATCH {self.path} starts")
        w = Watcher(res, ns)
        expired_at = None
        initial = []
        with st.cond:
            if send_initial or (rv_param in ("", "0") and initial_events != "false"):
                objs = st.data.get(res.rkey, {})
                initial = [objs[k] for k in sorted(objs) if match.key_ok(k) and match(objs[k])]
                last = st.rv
            elif rv_param in ("", "0"):
                last = st.rv
            else:
                try:
                    last = int(rv_param)
                except ValueError:
                    raise bad_request(f"invalid resource version: {rv_param!r}") from None
                if st.too_old(last):
                    expired_at = (last, st.compacted)
            st.watchers.add(w)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            first = [True]

            def emit(etype, obj):
                if table_v and etype in (ADDED, MODIFIED, DELETED):
                    meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                    obj = resources.table(res, [obj], meta, include, table_v, with_columns=first[0])
                    first[0] = False
                self.write_event(etype, obj)

            if expired_at:
                self.write_event("ERROR", errors.status_object(
                    410, "Expired", f"too old resource version: {expired_at[0]} ({expired_at[1]})"))
                self.end_stream()
                return
            for obj in initial:
                emit(ADDED, obj)
            if send_initial:
                self.write_event("BOOKMARK", self.bookmark(res, last, initial_end=True))
            self.watch_loop(w, res, match, emit, last, timeout, bookmarks)
        except (_Closed, OSError, ssl.SSLError):
            self.close_connection = True
        finally:
            with st.cond:
                st.watchers.discard(w)
                st.cond.notify_all()
                for _, _, ev in w.controls:
                    ev.set()
                w.controls = []

    @staticmethod
    def bookmark(res, rv, initial_end=False):
        md = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": res.kind, "apiVersion": res.api_version, "metadata": md}

    def watch_loop(self, w, res, match, emit, last, timeout, bookmarks):
        st = self.server.store
        start = time.monotonic()
        deadline = start + timeout if timeout else None
        interval = max(0.05, self.server.opts.bookmark_interval)
        next_bm = start + interval if bookmarks else None
        next_check = start + 1.0
        while True:
            events = controls = None
            action = None
            with st.cond:
                while True:
                    if st.stopping:
                        action = "stop"
                        break
                    if w.controls:
                        controls, w.controls = w.controls, []
                        action = "controls"
                        break
                    if st.rv > last:
                        if st.too_old(last):
                            action = "expired"
                            expired_at = (last, st.compacted)
                            break
                        events = st.events_after(last)
                        last = st.rv
                        action = "events"
                        break
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        action = "timeout"
                        break
                    if next_bm is not None and now >= next_bm:
                        action = "bookmark"
                        break
                    if now >= next_check:
                        action = "check"
                        break
                    wake = min(t for t in (deadline, next_bm, next_check) if t is not None)
                    st.cond.wait(max(0.01, wake - now))
            if action in ("stop", "timeout"):
                self.end_stream()
                return
            if action == "expired":
                self.write_event("ERROR", errors.status_object(
                    410, "Expired", f"too old resource version: {expired_at[0]} ({expired_at[1]})"))
                self.end_stream()
                return
            if action == "controls":
                try:
                    for name, spec, ev in controls:
                        self.watch_fault(name, spec, res, last, ev)
                        ev.set()
                finally:
                    for _, _, ev in controls:
                        ev.set()
                continue
            if action == "bookmark":
                self.write_event("BOOKMARK", self.bookmark(res, last))
                next_bm = time.monotonic() + interval
                continue
            if action == "check":
                if self.peer_closed():
                    raise _Closed()
                next_check = time.monotonic() + 1.0
                continue
            for ev in events:
                if ev.rkey != res.rkey or not match.key_ok(ev.key):
                    continue
                now_in = ev.type != DELETED and match(ev.obj)
                was_in = ev.prev is not None and match(ev.prev)
                if ev.type == ADDED:
                    if now_in:
                        emit(ADDED, ev.obj)
                elif ev.type == MODIFIED:
                    if now_in and was_in:
                        emit(MODIFIED, ev.obj)
                    elif now_in:
                        emit(ADDED, ev.obj)
                    elif was_in:
                        emit(DELETED, ev.obj)
                elif was_in:
                    emit(DELETED, ev.obj)

    def watch_fault(self, name, spec, res, last, started):
        """Carry out one watch fault; set started once the client can see it."""
        if name == "drop-watches":
            self.abort_stream()
        elif name == "garbage":
            text = spec.get("text")
            if text is None:
                text = "this is not JSON {{{ \x01 ]]"
            data = text.encode() if isinstance(text, str) else bytes(text)
            self.write_chunk(data if data.endswith(b"\n") else data + b"\n")
        elif name == "truncate":
            line = json.dumps({"type": "MODIFIED", "object": self.bookmark(res, last)},
                              separators=(",", ":")).encode()
            self.write_chunk(line[:len(line) // 2])
            self.abort_stream()
        elif name == "huge-line":
            size = int(spec.get("bytes", 4 << 20))
            bm = self.bookmark(res, last)
            bm["metadata"]["annotations"] = {"emulator.kproxy.test/padding": "@PAD@"}
            head, tail = json.dumps({"type": "BOOKMARK", "object": bm},
                                    separators=(",", ":")).encode().split(b"@PAD@")
            tail += b"\n"
            pad = max(0, size - len(head) - len(tail))
            self.write_chunk(head)
            # The client may only read once the fault request returns: do not wait for the rest.
            started.set()
            block = b"x" * 65536
            while pad > 0:
                n = min(pad, len(block))
                self.write_chunk(block[:n])
                pad -= n
            self.write_chunk(tail)

    # ------------------------------------------------------------ control endpoint

    def control(self, method, path, body):
        srv = self.server
        if path.rstrip("/") == "/emulator/watches" and method == "GET":
            return self.send_json(200, srv.watch_counts())
        if path.rstrip("/") == "/emulator/requests" and method == "GET":
            return self.send_json(200, list(srv.requests))
        if path.rstrip("/") == "/emulator/faults":
            if method == "GET":
                return self.send_json(200, srv.faults.describe())
            if method != "POST":
                raise errors.method_not_allowed(method)
            spec = self.json_body(body)
            if not isinstance(spec, dict) or not isinstance(spec.get("action"), str):
                raise bad_request('the body must be a JSON object with an "action"')
            action = spec["action"]
            result = {"ok": True}
            if action in ("error", "delay"):
                try:
                    srv.faults.add(action, spec)
                except (TypeError, ValueError) as e:
                    raise bad_request(f"bad fault: {e}") from None
            elif action == "reset":
                srv.faults.reset()
            elif action == "expire":
                with srv.store.cond:
                    srv.store.expire()
                    srv.store.cond.notify_all()
                    result["resourceVersion"] = str(srv.store.rv)
            elif action in WATCH_ACTIONS:
                result["watches"] = srv.broadcast(action, spec)
            else:
                raise bad_request(f"unknown fault action {action!r}")
            return self.send_json(200, result)
        raise errors.no_route()
