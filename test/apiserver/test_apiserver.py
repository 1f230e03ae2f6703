"""Tests of the Kubernetes API server emulator (test/apiserver/apiserver.py).

Run with ``python3 test/lib/harness.py test/apiserver/test_apiserver.py``.
The suite starts the emulator on 127.0.0.1 (port 0, TLS, a bearer token and a
client CA), drives it with kubectl and curl the way kproxy's other tests will,
and reads watch streams over a raw TLS socket so that chunk framing, clean
ends and abrupt closes can be checked exactly.  Every server and client
process it starts is stopped in teardown; all waits are bounded.
"""

import json
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import harness  # noqa: E402

SERVER = os.path.join(HERE, "apiserver.py")
GENCERTS = os.path.join(HERE, "gencerts.sh")
KUBECONFIG = os.path.join(HERE, "kubeconfig.sh")
TOKEN = "kproxy-test-token"

TMP = None
CERTS = None
MAIN = None            # the shared emulator: TLS, token, client CA, short bookmarks
PROCS = []             # every process started, stopped in teardown
KUBE_ENV = None


# ============================================================== helpers

def wait_until(fn, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def track(p):
    PROCS.append(p)
    return p


def stop_proc(p, sig=signal.SIGTERM, timeout=5):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return p.returncode


class Emulator:
    """One emulator process, started with port 0 and a port file."""

    def __init__(self, *args, tls=True, bind="127.0.0.1", auth=True, extra=()):
        self.dir = tempfile.mkdtemp(dir=TMP, prefix="emu-")
        self.port_file = os.path.join(self.dir, "port")
        self.tls = tls
        self.bind = bind
        cmd = [sys.executable, SERVER, "--bind", bind, "--port", "0", "--port-file", self.port_file,
               "--log", os.path.join(self.dir, "log")]
        if tls:
            cmd += ["--tls-cert", cert("server.crt"), "--tls-key", cert("server.key")]
            if auth:
                cmd += ["--client-ca", cert("ca.crt")]
        if auth:
            cmd += ["--token", TOKEN]
        cmd += list(args) + list(extra)
        self.proc = track(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                           stderr=open(os.path.join(self.dir, "stderr"), "w")))
        wait_until(lambda: os.path.exists(self.port_file) or self.proc.poll() is not None,
                   10, what="the emulator's port file")
        if self.proc.poll() is not None:
            raise AssertionError("emulator exited: " + open(os.path.join(self.dir, "stderr")).read())
        self.port = int(open(self.port_file).read())
        host = f"[{bind}]" if ":" in bind else bind
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"

    def stop(self, sig=signal.SIGTERM):
        return stop_proc(self.proc, sig)


def cert(name):
    return os.path.join(CERTS, name)


class Resp:
    def __init__(self, code, headers, text):
        self.code = code
        self.headers = headers
        self.text = text
        try:
            self.json = json.loads(text) if text.strip() else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<Resp {self.code} {self.text[:300]!r}>"


def curl(path, method="GET", body=None, ctype="application/json", token=TOKEN, emu=None,
         headers=(), extra=(), ca=None, timeout=10):
    """One request with curl; returns Resp (code 0 when curl itself failed)."""
    emu = emu or MAIN
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-D", "-", "-X", method]
    if emu.tls:
        cmd += ["--cacert", ca or cert("ca.crt")]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    for h in headers:
        cmd += ["-H", h]
    data = None
    if body is not None:
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        if isinstance(data, str):
            data = data.encode()
        cmd += ["-H", f"Content-Type: {ctype}", "--data-binary", "@-"]
    cmd += list(extra) + [emu.url + path]
    p = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout + 5)
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        r = Resp(0, {}, p.stderr.decode(errors="replace"))
        r.curl_rc = p.returncode
        return r
    head, _, text = out.partition("\r\n\r\n")
    while head.startswith("HTTP/1.1 100"):
        head, _, text = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    code = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    r = Resp(code, hdrs, text)
    r.curl_rc = 0
    return r


def ok(resp, code=200):
    assert resp.code == code, f"expected HTTP {code}, got {resp!r}"
    return resp.json


def kubectl(*args, check=True, kubeconfig=None, stdin=None, timeout=30):
    cmd = ["kubectl", "--kubeconfig", kubeconfig or os.path.join(TMP, "kubeconfig")] + list(args)
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=KUBE_ENV)
    if check and p.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def need_kubectl():
    if not shutil.which("kubectl"):
        harness.skip("kubectl is not installed")


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def fault(spec, emu=None):
    return ok(curl("/emulator/faults", "POST", spec, emu=emu))


def watches(emu=None):
    return ok(curl("/emulator/watches", emu=emu))


def current_rv(emu=None):
    return int(ok(curl("/api/v1/namespaces", emu=emu))["metadata"]["resourceVersion"])


def create(path, obj, emu=None, code=201):
    return ok(curl(path, "POST", obj, emu=emu), code)


def cm(name, labels=None, data=None):
    md = {"name": name}
    if labels:
        md["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": data or {}}


class WatchStream:
    """A watch read over a raw socket: de-chunks the body and tells clean ends from aborts."""

    def __init__(self, path, emu=None, token=TOKEN, headers=()):
        emu = emu or MAIN
        family = socket.AF_INET6 if ":" in emu.bind else socket.AF_INET
        raw = socket.socket(family, socket.SOCK_STREAM)
        raw.settimeout(5)
        raw.connect((emu.bind, emu.port))
        if emu.tls:
            ctx = ssl.create_default_context(cafile=cert("ca.crt"))
            raw = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock = raw
        req = [f"GET {path} HTTP/1.1", f"Host: {emu.bind}:{emu.port}", "Accept: application/json"]
        if token:
            req.append(f"Authorization: Bearer {token}")
        req += list(headers)
        self.sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
        self.buf = b""
        self.data = b""
        self.end = None          # None while open, then "clean" or "abrupt"
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in self.buf:
            self._recv(deadline)
            if self.end:
                raise AssertionError("connection closed before the response headers")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.code = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "")
        self._parse()

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from the watch in time")
        self.sock.settimeout(left)
        try:
            got = self.sock.recv(1 << 20)
        except (socket.timeout, TimeoutError):
            raise TimeoutError("no data from the watch in time") from None
        except (ssl.SSLError, ConnectionError, OSError):
            got = b""
        if not got:
            self.end = self.end or "abrupt"
        self.buf += got

    def _parse(self):
        if not self.chunked:
            self.data += self.buf
            self.buf = b""
            return
        while self.end is None:
            i = self.buf.find(b"\r\n")
            if i < 0:
                return
            size = int(self.buf[:i].split(b";")[0], 16)
            if size == 0:
                if len(self.buf) >= i + 4:
                    self.buf = self.buf[i + 4:]
                    self.end = "clean"
                return
            if len(self.buf) < i + 2 + size + 2:
                return
            self.data += self.buf[i + 2:i + 2 + size]
            self.buf = self.buf[i + 2 + size + 2:]

    def line(self, timeout=5.0):
        """The next line (without newline), or None when the stream ended."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.data:
            if self.end:
                return None
            self._recv(deadline)
            self._parse()
        line, self.data = self.data.split(b"\n", 1)
        return line

    def event(self, timeout=5.0):
        line = self.line(timeout)
        return None if line is None else json.loads(line)

    def events_until_end(self, timeout=5.0):
        out = []
        deadline = time.monotonic() + timeout
        while True:
            ev = self.event(max(0.01, deadline - time.monotonic()))
            if ev is None:
                return out
            out.append(ev)

    def wait_end(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self.end:
            self._recv(deadline)
            self._parse()
        return self.end

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def expect_event(w, etype, name=None, timeout=5.0):
    ev = w.event(timeout)
    assert ev is not None, f"stream ended while waiting for {etype} {name}"
    assert ev["type"] == etype, f"expected {etype} {name}, got {ev['type']} {ev['object'].get('metadata', {}).get('name')}"
    if name is not None:
        assert ev["object"]["metadata"]["name"] == name, ev
    return ev


def expect_quiet(w, seconds=0.3):
    try:
        line = w.line(seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected data on the watch: {line!r}")


class Background:
    """A background command whose output lines are collected by a thread."""

    def __init__(self, cmd, env=None):
        self.proc = track(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           text=True, env=env))
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, fn, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching output in {timeout}s; got {self.seen}") from None
            if line is None:
                raise AssertionError(f"command ended; output {self.seen}")
            self.seen.append(line)
            if fn(line):
                return line

    def stop(self):
        stop_proc(self.proc, signal.SIGTERM, 5)


# ============================================================== set-up

def setup_module():
    global TMP, CERTS, MAIN, KUBE_ENV
    for tool in ("curl", "openssl"):
        if not shutil.which(tool):
            harness.skip(f"{tool} is not installed")
    TMP = tempfile.mkdtemp(prefix="kproxy-apiserver-test-")
    CERTS = os.path.join(TMP, "certs")
    subprocess.run([GENCERTS, CERTS, "192.0.2.10", "apiserver.test"], check=True, timeout=60)
    MAIN = Emulator("--bookmark-interval", "0.3")
    subprocess.run([KUBECONFIG, os.path.join(TMP, "kubeconfig"), MAIN.url, cert("ca.crt"), TOKEN],
                   check=True, timeout=10)
    home = os.path.join(TMP, "home")
    os.makedirs(home)
    # A private HOME keeps kubectl's discovery cache and config out of the user's.
    KUBE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    KUBE_ENV["HOME"] = home


def teardown_module():
    for p in PROCS:
        try:
            stop_proc(p, signal.SIGKILL if p.poll() is None and p.args[0] == "kubectl" else signal.SIGTERM)
        except Exception:
            pass
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


# ============================================================== discovery, health

def test_health_version_and_discovery():
    for path in ("/healthz", "/livez", "/readyz"):
        r = curl(path)
        assert r.code == 200 and r.text == "ok", r
    v = ok(curl("/version"))
    assert v["gitVersion"].startswith("v1.") and v["major"] == "1", v
    assert ok(curl("/api"))["versions"] == ["v1"]
    groups = {g["name"]: g for g in ok(curl("/apis"))["groups"]}
    for g in ("apps", "discovery.k8s.io", "networking.k8s.io", "rbac.authorization.k8s.io",
              "events.k8s.io", "coordination.k8s.io"):
        assert groups[g]["preferredVersion"]["version"] == "v1", groups
    core = {r["name"]: r for r in ok(curl("/api/v1"))["resources"]}
    assert core["services"]["shortNames"] == ["svc"] and core["services"]["namespaced"]
    assert core["nodes"]["namespaced"] is False and core["nodes"]["kind"] == "Node"
    assert core["endpoints"]["singularName"] == "endpoints"
    assert "services/status" in core and "watch" in core["pods"]["verbs"]
    disc = {r["name"]: r for r in ok(curl("/apis/discovery.k8s.io/v1"))["resources"]}
    assert disc["endpointslices"]["kind"] == "EndpointSlice"
    assert ok(curl("/apis/apps"))["name"] == "apps"
    assert curl("/apis/nosuch.group/v1").code == 404
    assert curl("/openapi/v2").code == 404
    r = curl("/apis", headers=["Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"])
    assert r.code == 200 and "apidiscovery.k8s.io;v=v2" in r.headers["content-type"], r.headers
    agg = {i["metadata"]["name"]: i for i in r.json["items"]}
    ds = [x for x in agg["apps"]["versions"][0]["resources"] if x["resource"] == "daemonsets"][0]
    assert ds["scope"] == "Namespaced" and ds["shortNames"] == ["ds"] and ds["responseKind"]["kind"] == "DaemonSet"


def test_kubectl_discovery():
    need_kubectl()
    out = kubectl("api-resources", "--no-headers").stdout
    rows = {tuple(line.split()[:2]) for line in out.splitlines()}
    for row in (("services", "svc"), ("endpoints", "ep"), ("nodes", "no"), ("namespaces", "ns"),
                ("pods", "po"), ("configmaps", "cm"), ("serviceaccounts", "sa"),
                ("daemonsets", "ds"), ("deployments", "deploy")):
        assert row in rows, (row, out)
    assert "endpointslices" in out and "clusterroles" in out and "leases" in out
    out = kubectl("get", "ns").stdout
    assert out.split()[:3] == ["NAME", "STATUS", "AGE"] and "kube-system" in out, out

    # Without aggregated discovery kubectl falls back to the per-group documents.
    emu = Emulator("--no-aggregated-discovery", tls=False, auth=False)
    try:
        kc = os.path.join(TMP, "kubeconfig-legacy")
        subprocess.run([KUBECONFIG, kc, emu.url, "-", "-"], check=True)
        create("/api/v1/namespaces/default/services", svc_body("legacy"), emu=emu)
        out = kubectl("get", "svc,ds", kubeconfig=kc).stdout
        assert "service/legacy" in out, out
        r = curl("/api", emu=emu, token=None,
                 headers=["Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"])
        assert r.json["kind"] == "APIVersions", r
        log = open(os.path.join(emu.dir, "log")).read()
        assert "GET /apis/apps/v1" in log and "GET /api/v1?" in log, log
    finally:
        emu.stop()


# ============================================================== kubectl CRUD

SERVICE_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: kctl
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: {target}
  - name: dns
    port: 53
    protocol: UDP
"""


def test_kubectl_service_lifecycle():
    need_kubectl()
    path = write("svc.yaml", SERVICE_YAML.format(target=8080))
    out = kubectl("create", "-f", path, "--validate=false").stdout
    assert "service/web created" in out, out
    svc = json.loads(kubectl("get", "svc", "web", "-n", "kctl", "-o", "json").stdout)
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["clusterIP"].startswith("10.96.") and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ports"][0] == {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}
    assert spec["ports"][1] == {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}
    md = svc["metadata"]
    assert md["uid"] and md["creationTimestamp"] and md["generation"] == 1 and md["namespace"] == "kctl"
    table = kubectl("get", "svc", "-n", "kctl").stdout
    assert table.splitlines()[0].split()[:2] == ["NAME", "TYPE"], table
    assert "web" in table and spec["clusterIP"] in table and "80/TCP,53/UDP" in table, table

    write("svc.yaml", SERVICE_YAML.format(target=9090))
    out = kubectl("replace", "-f", path, "--validate=false").stdout
    assert "service/web replaced" in out, out
    svc2 = json.loads(kubectl("get", "svc", "web", "-n", "kctl", "-o", "json").stdout)
    assert svc2["spec"]["clusterIP"] == spec["clusterIP"], "clusterIP must carry over on replace"
    assert svc2["spec"]["ports"][0]["targetPort"] == 9090
    assert int(svc2["metadata"]["resourceVersion"]) > int(md["resourceVersion"])
    assert svc2["metadata"]["generation"] == 2 and svc2["metadata"]["uid"] == md["uid"]

    out = kubectl("delete", "-f", path).stdout
    assert 'service "web" deleted' in out, out
    p = kubectl("get", "svc", "web", "-n", "kctl", check=False)
    assert p.returncode != 0 and "NotFound" in p.stderr, p.stderr


SLICE_YAML = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: kctl
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
{endpoints}
"""

ENDPOINT = """\
- addresses: ["{ip}"]
  conditions: {{ready: true}}
  nodeName: node-1
"""


def test_kubectl_endpointslice_lifecycle():
    need_kubectl()
    path = write("slice.yaml", SLICE_YAML.format(endpoints=ENDPOINT.format(ip="10.244.1.5")))
    kubectl("create", "-f", path, "--validate=false")
    es = json.loads(kubectl("get", "endpointslices", "-n", "kctl", "-o", "json").stdout)
    assert es["kind"] == "List" or es["kind"] == "EndpointSliceList", es["kind"]
    (item,) = es["items"]
    assert item["addressType"] == "IPv4" and item["endpoints"][0]["addresses"] == ["10.244.1.5"]
    assert item["apiVersion"] == "discovery.k8s.io/v1" and item["kind"] == "EndpointSlice"
    two = ENDPOINT.format(ip="10.244.1.5") + ENDPOINT.format(ip="10.244.2.7")
    write("slice.yaml", SLICE_YAML.format(endpoints=two))
    kubectl("replace", "-f", path, "--validate=false")
    got = ok(curl("/apis/discovery.k8s.io/v1/namespaces/kctl/endpointslices/web-abc12"))
    assert [e["addresses"][0] for e in got["endpoints"]] == ["10.244.1.5", "10.244.2.7"]
    sel = kubectl("get", "endpointslices", "-n", "kctl", "-l", "kubernetes.io/service-name=web",
                  "-o", "name").stdout.split()
    assert sel == ["endpointslice.discovery.k8s.io/web-abc12"], sel
    kubectl("delete", "-f", path)
    assert curl("/apis/discovery.k8s.io/v1/namespaces/kctl/endpointslices/web-abc12").code == 404


OTHER_KINDS_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: kproxy-config, namespace: kube-system}
data: {mode: ebpf}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: kproxy, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:kproxy"}
rules:
- apiGroups: [""]
  resources: [services, endpoints, nodes]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:kproxy"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kproxy"}
subjects:
- {kind: ServiceAccount, name: kproxy, namespace: kube-system}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kproxy, namespace: kube-system, labels: {k8s-app: kproxy}}
spec:
  selector: {matchLabels: {k8s-app: kproxy}}
  template:
    metadata: {labels: {k8s-app: kproxy}}
    spec:
      serviceAccountName: kproxy
      hostNetwork: true
      containers:
      - name: kproxy
        image: kproxy:dev
        securityContext: {privileged: true}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: node-1, namespace: kube-node-lease}
spec: {holderIdentity: node-1, leaseDurationSeconds: 40}
---
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}
status:
  addresses: [{type: InternalIP, address: 192.0.2.11}]
"""


def test_kubectl_create_other_kinds():
    need_kubectl()
    path = write("kinds.yaml", OTHER_KINDS_YAML)
    out = kubectl("create", "-f", path, "--validate=false").stdout
    for line in ("configmap/kproxy-config created", "serviceaccount/kproxy created",
                 "clusterrole.rbac.authorization.k8s.io/system:kproxy created",
                 "clusterrolebinding.rbac.authorization.k8s.io/system:kproxy created",
                 "daemonset.apps/kproxy created", "lease.coordination.k8s.io/node-1 created",
                 "node/node-1 created"):
        assert line in out, (line, out)
    names = kubectl("get", "ds,cm,sa", "-n", "kube-system", "-o", "name").stdout.split()
    for n in ("daemonset.apps/kproxy", "configmap/kproxy-config", "serviceaccount/kproxy"):
        assert n in names, names
    cr = json.loads(kubectl("get", "clusterrole", "system:kproxy", "-o", "json").stdout)
    assert cr["rules"][1]["resources"] == ["endpointslices"] and "namespace" not in cr["metadata"]
    ds = ok(curl("/apis/apps/v1/namespaces/kube-system/daemonsets/kproxy"))
    assert ds["spec"]["template"]["spec"]["hostNetwork"] is True
    node = ok(curl("/api/v1/nodes/node-1"))
    assert node["status"]["addresses"][0]["address"] == "192.0.2.11"
    assert curl("/api/v1/namespaces/default/nodes/node-1").code == 404
    # kubectl create again: AlreadyExists
    p = kubectl("create", "-f", path, "--validate=false", check=False)
    assert p.returncode != 0 and "AlreadyExists" in p.stderr, p.stderr
    kubectl("delete", "-f", path)
    assert curl("/api/v1/nodes/node-1").code == 404


def test_kubectl_watch_sees_changes():
    need_kubectl()
    create("/api/v1/namespaces/kwatch/configmaps", cm("first"))
    bg = Background(["kubectl", "--kubeconfig", os.path.join(TMP, "kubeconfig"), "get", "configmaps",
                     "-n", "kwatch", "-w", "--output-watch-events"], env=KUBE_ENV)
    try:
        bg.wait_for(lambda l: "first" in l)
        wait_until(lambda: watches().get("configmaps"), what="kubectl's watch")
        create("/api/v1/namespaces/kwatch/configmaps", cm("second"))
        bg.wait_for(lambda l: "ADDED" in l and "second" in l)
        ok(curl("/api/v1/namespaces/kwatch/configmaps/second", "DELETE"))
        bg.wait_for(lambda l: "DELETED" in l and "second" in l)
    finally:
        bg.stop()
    # -o json watch prints whole objects
    bg = Background(["kubectl", "--kubeconfig", os.path.join(TMP, "kubeconfig"), "get", "configmaps",
                     "-n", "kwatch", "-w", "-o", "json"], env=KUBE_ENV)
    try:
        bg.wait_for(lambda l: '"name": "first"' in l)
    finally:
        bg.stop()


def test_kubectl_patch_label_and_status():
    need_kubectl()
    create("/api/v1/namespaces/kpatch/services", {
        "metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}})
    kubectl("label", "svc", "lb", "-n", "kpatch", "tier=edge")
    kubectl("patch", "svc", "lb", "-n", "kpatch", "--subresource=status", "--type=merge",
            "-p", '{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.80"}]}}}')
    table = kubectl("get", "svc", "lb", "-n", "kpatch").stdout
    assert "192.0.2.80" in table and "LoadBalancer" in table, table
    svc = ok(curl("/api/v1/namespaces/kpatch/services/lb"))
    assert svc["metadata"]["labels"] == {"tier": "edge"}
    kubectl("annotate", "svc", "lb", "-n", "kpatch", "note=x")
    svc2 = ok(curl("/api/v1/namespaces/kpatch/services/lb"))
    assert svc2["status"] == svc["status"] and svc2["spec"] == svc["spec"]


# ============================================================== Service allocation

def svc_body(name, **spec):
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def test_cluster_ip_allocation():
    base = "/api/v1/namespaces/alloc/services"
    a = create(base, svc_body("a"))["spec"]
    assert a["clusterIP"].startswith("10.96.") and a["clusterIPs"] == [a["clusterIP"]]
    b = create(base, svc_body("b", clusterIP="10.96.7.7"))["spec"]
    assert b["clusterIPs"] == ["10.96.7.7"]
    r = curl(base, "POST", svc_body("c", clusterIP="10.96.7.7"))
    assert r.code == 422 and r.json["reason"] == "Invalid" and "already allocated" in r.json["message"], r
    r = curl(base, "POST", svc_body("c", clusterIP="10.1.2.3"))
    assert r.code == 422 and "not in the valid range" in r.json["message"], r
    assert r.json["details"]["causes"][0]["field"] == "spec.clusterIPs[0]"
    h = create(base, svc_body("headless", clusterIP="None"))["spec"]
    assert h["clusterIP"] == "None" and h["clusterIPs"] == ["None"]
    e = create(base, {"metadata": {"name": "ext"},
                      "spec": {"type": "ExternalName", "externalName": "example.test"}})["spec"]
    assert "clusterIP" not in e and "clusterIPs" not in e and "ipFamilies" not in e, e
    d = create(base, svc_body("dual", ipFamilyPolicy="PreferDualStack"))["spec"]
    assert d["ipFamilies"] == ["IPv4", "IPv6"] and len(d["clusterIPs"]) == 2, d
    assert d["clusterIPs"][1].startswith("fd00:96::"), d
    d6 = create(base, svc_body("dual6", ipFamilyPolicy="RequireDualStack",
                               ipFamilies=["IPv6", "IPv4"]))["spec"]
    assert ":" in d6["clusterIP"] and "." in d6["clusterIPs"][1], d6
    s6 = create(base, svc_body("single6", ipFamilies=["IPv6"]))["spec"]
    assert s6["ipFamilyPolicy"] == "SingleStack" and ":" in s6["clusterIP"]
    # Released on delete: the same IP can be taken again.
    ok(curl(base + "/b", "DELETE"))
    assert create(base, svc_body("b2", clusterIP="10.96.7.7"))["spec"]["clusterIP"] == "10.96.7.7"
    # A single-stack emulator refuses RequireDualStack but accepts PreferDualStack.
    emu = Emulator("--service-cluster-ip-range", "10.100.0.0/24", tls=False, auth=False)
    try:
        r = curl("/api/v1/namespaces/x/services", "POST", svc_body("r", ipFamilyPolicy="RequireDualStack"), emu=emu)
        assert r.code == 422, r
        p = create("/api/v1/namespaces/x/services", svc_body("p", ipFamilyPolicy="PreferDualStack"), emu=emu)
        assert p["spec"]["ipFamilies"] == ["IPv4"] and p["spec"]["clusterIP"].startswith("10.100.0."), p
    finally:
        emu.stop()


def test_node_port_allocation():
    base = "/api/v1/namespaces/nodeport/services"
    np = create(base, svc_body("np", type="NodePort",
                               ports=[{"name": "a", "port": 80}, {"name": "b", "port": 443}]))["spec"]
    ports = [p["nodePort"] for p in np["ports"]]
    assert all(30000 <= p <= 32767 for p in ports) and len(set(ports)) == 2, ports
    assert np["externalTrafficPolicy"] == "Cluster" and "healthCheckNodePort" not in np
    r = curl(base, "POST", svc_body("dup", type="NodePort", ports=[{"port": 80, "nodePort": ports[0]}]))
    assert r.code == 422 and "already allocated" in r.json["message"], r
    r = curl(base, "POST", svc_body("out", type="NodePort", ports=[{"port": 80, "nodePort": 80}]))
    assert r.code == 422 and "valid range" in r.json["message"], r
    r = curl(base, "POST", svc_body("twice", type="NodePort", ports=[
        {"name": "a", "port": 80, "nodePort": 31001}, {"name": "b", "port": 81, "nodePort": 31001}]))
    assert r.code == 422 and "Duplicate" in r.json["message"], r
    r = curl(base, "POST", svc_body("cip", ports=[{"port": 80, "nodePort": 31002}]))
    assert r.code == 422, r
    given = create(base, svc_body("given", type="NodePort", ports=[{"port": 80, "nodePort": 31000}]))
    assert given["spec"]["ports"][0]["nodePort"] == 31000
    lb = create(base, svc_body("lb", type="LoadBalancer", externalTrafficPolicy="Local"))["spec"]
    assert lb["allocateLoadBalancerNodePorts"] is True and lb["ports"][0]["nodePort"]
    assert 30000 <= lb["healthCheckNodePort"] <= 32767 and lb["healthCheckNodePort"] != lb["ports"][0]["nodePort"]
    nolb = create(base, svc_body("nolb", type="LoadBalancer", allocateLoadBalancerNodePorts=False))["spec"]
    assert "nodePort" not in nolb["ports"][0], nolb
    # Released on delete.
    ok(curl(base + "/given", "DELETE"))
    again = create(base, svc_body("again", type="NodePort", ports=[{"port": 80, "nodePort": 31000}]))
    assert again["spec"]["ports"][0]["nodePort"] == 31000
    # A small range fills up and says so.
    emu = Emulator("--service-node-port-range", "30000-30001", tls=False, auth=False)
    try:
        two = svc_body("two", type="NodePort", ports=[{"name": "a", "port": 1}, {"name": "b", "port": 2}])
        got = create("/api/v1/namespaces/x/services", two, emu=emu)["spec"]["ports"]
        assert sorted(p["nodePort"] for p in got) == [30000, 30001]
        r = curl("/api/v1/namespaces/x/services", "POST", svc_body("three", type="NodePort"), emu=emu)
        assert r.code == 422 and "full" in r.json["message"], r
    finally:
        emu.stop()


def test_replace_carry_over_and_conflicts():
    base = "/api/v1/namespaces/replace/services"
    created = create(base, svc_body("s", type="NodePort"))
    cip, nport = created["spec"]["clusterIP"], created["spec"]["ports"][0]["nodePort"]
    body = svc_body("s", type="NodePort", ports=[{"port": 80, "targetPort": 8080}])
    got = ok(curl(base + "/s", "PUT", body))
    assert got["spec"]["clusterIP"] == cip and got["spec"]["ports"][0]["nodePort"] == nport, got
    assert got["spec"]["ports"][0]["targetPort"] == 8080
    stale = dict(body, metadata={"name": "s", "resourceVersion": created["metadata"]["resourceVersion"]})
    r = curl(base + "/s", "PUT", stale)
    assert r.code == 409 and r.json["reason"] == "Conflict", r
    fresh = dict(body, metadata={"name": "s", "resourceVersion": got["metadata"]["resourceVersion"]})
    fresh["spec"] = dict(body["spec"], sessionAffinity="ClientIP")
    assert ok(curl(base + "/s", "PUT", fresh))["spec"]["sessionAffinity"] == "ClientIP"
    assert curl(base + "/missing", "PUT", svc_body("missing")).code == 404
    r = curl(base + "/s", "PUT", svc_body("s", type="NodePort", clusterIP="10.96.99.99"))
    assert r.code == 422 and "clusterIPs[0]" in r.text, r
    r = curl(base + "/s", "PUT", svc_body("other"))
    assert r.code == 400, r
    # NodePort -> ClusterIP with the body read back: node ports are dropped and released.
    cur = ok(curl(base + "/s"))
    cur["spec"]["type"] = "ClusterIP"
    after = ok(curl(base + "/s", "PUT", cur))
    assert "nodePort" not in after["spec"]["ports"][0] and after["spec"]["clusterIP"] == cip
    reuse = create(base, svc_body("reuse", type="NodePort", ports=[{"port": 80, "nodePort": nport}]))
    assert reuse["spec"]["ports"][0]["nodePort"] == nport
    # A no-op replace does not change the resourceVersion.
    same = ok(curl(base + "/s", "PUT", after))
    assert same["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]


def test_status_subresource():
    base = "/api/v1/namespaces/status/services"
    created = create(base, svc_body("lb", type="LoadBalancer"))
    body = json.loads(json.dumps(created))
    body["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.50"}]}}
    body["spec"]["sessionAffinity"] = "ClientIP"     # ignored by /status
    got = ok(curl(base + "/lb/status", "PUT", body))
    assert got["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.50"}]
    assert got["spec"]["sessionAffinity"] == "None" and got["metadata"]["generation"] == 1
    # A main-resource PUT keeps the status.
    body = ok(curl(base + "/lb"))
    body["status"] = {}
    body["spec"]["sessionAffinity"] = "ClientIP"
    got = ok(curl(base + "/lb", "PUT", body))
    assert got["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.50"}]
    assert got["spec"]["sessionAffinity"] == "ClientIP" and got["metadata"]["generation"] == 2
    got = ok(curl(base + "/lb/status", "PATCH", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.51"}]}}},
                  ctype="application/merge-patch+json"))
    assert got["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.51"}]
    assert curl(base + "/lb/nosuch").code == 404


def test_patch_types():
    base = "/api/v1/namespaces/patch/configmaps"
    create(base, cm("p", labels={"a": "1", "b": "2"}, data={"k": "v"}))
    got = ok(curl(base + "/p", "PATCH", {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"x": "y"}},
                  ctype="application/merge-patch+json"))
    assert got["metadata"]["labels"] == {"b": "2", "c": "3"} and got["data"] == {"k": "v", "x": "y"}
    got = ok(curl(base + "/p", "PATCH", {"data": {"k": "w"}}, ctype="application/strategic-merge-patch+json"))
    assert got["data"] == {"k": "w", "x": "y"}
    ops = [{"op": "add", "path": "/data/n", "value": "1"}, {"op": "remove", "path": "/data/x"},
           {"op": "replace", "path": "/metadata/labels/b", "value": "20"}]
    got = ok(curl(base + "/p", "PATCH", ops, ctype="application/json-patch+json"))
    assert got["data"] == {"k": "w", "n": "1"} and got["metadata"]["labels"]["b"] == "20"
    r = curl(base + "/p", "PATCH", [{"op": "test", "path": "/data/k", "value": "nope"}],
             ctype="application/json-patch+json")
    assert r.code == 422, r
    r = curl(base + "/p", "PATCH", [{"op": "remove", "path": "/data/absent"}], ctype="application/json-patch+json")
    assert r.code == 422, r
    assert curl(base + "/p", "PATCH", {"data": {}}, ctype="text/plain").code == 415
    assert curl(base + "/nope", "PATCH", {"data": {}}, ctype="application/merge-patch+json").code == 404
    # A patch carrying a stale resourceVersion conflicts.
    r = curl(base + "/p", "PATCH", {"metadata": {"resourceVersion": "1"}}, ctype="application/merge-patch+json")
    assert r.code == 409, r
    # Strategic patches merge lists that carry $setElementOrder, by their merge key.
    svcs = "/api/v1/namespaces/patch/services"
    create(svcs, svc_body("sp", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}]))
    sp = {"$setElementOrder/ports": [{"port": 80}, {"port": 81}],
          "spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 81}], "ports": [{"port": 81, "targetPort": 9000}]}}
    got = ok(curl(svcs + "/sp", "PATCH", sp, ctype="application/strategic-merge-patch+json"))
    assert [(p["port"], p["targetPort"]) for p in got["spec"]["ports"]] == [(80, 80), (81, 9000)], got["spec"]


def test_create_get_delete_errors():
    base = "/api/v1/namespaces/errs/configmaps"
    first = create(base, cm("one"))
    assert list(first)[:2] == ["kind", "apiVersion"]
    r = curl(base, "POST", cm("one"))
    assert r.code == 409 and r.json["reason"] == "AlreadyExists", r
    assert r.json["details"] == {"name": "one", "kind": "configmaps"}
    r = curl(base + "/zzz")
    assert r.code == 404 and r.json == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "zzz" not found', "reason": "NotFound", "code": 404,
        "details": {"name": "zzz", "kind": "configmaps"}}, r.json
    other = cm("two")
    other["metadata"]["namespace"] = "elsewhere"
    r = curl(base, "POST", other)
    assert r.code == 400 and r.json["reason"] == "BadRequest", r
    r = curl(base, "POST", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
    assert r.code == 400, r
    assert curl(base, "POST", "{not json").code == 400
    r = curl(base, "POST", {"metadata": {}})
    assert r.code == 422, r
    gen = create(base, {"metadata": {"generateName": "gen-"}})
    assert gen["metadata"]["name"].startswith("gen-") and len(gen["metadata"]["name"]) == 9
    gone = ok(curl(base + "/one", "DELETE"))
    assert gone["metadata"]["name"] == "one" and gone["kind"] == "ConfigMap"
    assert int(gone["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert curl(base + "/one", "DELETE").code == 404
    r = curl("/apis/discovery.k8s.io/v1/namespaces/errs/endpointslices/x")
    assert r.code == 404 and r.json["message"] == 'endpointslices.discovery.k8s.io "x" not found', r
    assert curl("/api/v1/nosuch").code == 404
    assert curl("/api/v1/services/x").code == 404
    # Collection delete with a selector.
    create(base, cm("c1", labels={"del": "yes"}))
    create(base, cm("c2", labels={"del": "no"}))
    deleted = ok(curl(base + "?labelSelector=del%3Dyes", "DELETE"))
    assert [i["metadata"]["name"] for i in deleted["items"]] == ["c1"]
    left = ok(curl(base))["items"]
    assert sorted(i["metadata"]["name"] for i in left) == sorted(["c2", gen["metadata"]["name"]])


def test_namespace_delete_cascades():
    create("/api/v1/namespaces", {"metadata": {"name": "doomed"}})
    ns = ok(curl("/api/v1/namespaces/doomed"))
    assert ns["status"]["phase"] == "Active" and ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "doomed"
    create("/api/v1/namespaces/doomed/configmaps", cm("c"))
    s = create("/api/v1/namespaces/doomed/services", svc_body("s", clusterIP="10.96.200.1"))
    ok(curl("/api/v1/namespaces/doomed", "DELETE"))
    assert curl("/api/v1/namespaces/doomed/configmaps/c").code == 404
    assert curl("/api/v1/namespaces/doomed/services/s").code == 404
    create("/api/v1/namespaces/other/services", svc_body("s", clusterIP=s["spec"]["clusterIP"]))


# ============================================================== list

def test_list_limit_and_continue():
    base = "/api/v1/namespaces/page/configmaps"
    for i in (5, 3, 6, 0, 4, 1, 2):
        create(base, cm(f"cm-{i}"))
    first = ok(curl(base + "?limit=3"))
    assert first["kind"] == "ConfigMapList" and first["apiVersion"] == "v1"
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-0", "cm-1", "cm-2"]
    token, rv = first["metadata"]["continue"], first["metadata"]["resourceVersion"]
    assert first["metadata"]["remainingItemCount"] == 4
    # Changes after the first page do not show on later pages: a consistent snapshot.
    ok(curl(base + "/cm-4", "DELETE"))
    create(base, cm("cm-3a"))
    second = ok(curl(base + f"?limit=3&continue={token}"))
    assert [i["metadata"]["name"] for i in second["items"]] == ["cm-3", "cm-4", "cm-5"]
    assert second["metadata"]["resourceVersion"] == rv
    third = ok(curl(base + f"?limit=3&continue={second['metadata']['continue']}"))
    assert [i["metadata"]["name"] for i in third["items"]] == ["cm-6"]
    assert "continue" not in third["metadata"]
    now = ok(curl(base))
    assert [i["metadata"]["name"] for i in now["items"]] == ["cm-0", "cm-1", "cm-2", "cm-3", "cm-3a", "cm-5", "cm-6"]
    assert int(now["metadata"]["resourceVersion"]) > int(rv)
    # All-namespaces list is sorted by namespace, then name.
    allns = ok(curl("/api/v1/configmaps"))["items"]
    keys = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in allns]
    assert keys == sorted(keys) and ("page", "cm-0") in keys
    assert curl(base + "?limit=3&continue=garbage!").code == 400
    # resourceVersionMatch=Exact reads the past.
    old = ok(curl(base + f"?resourceVersion={rv}&resourceVersionMatch=Exact"))
    assert len(old["items"]) == 7 and "cm-4" in [i["metadata"]["name"] for i in old["items"]]
    r = curl(base + f"?resourceVersion={int(now['metadata']['resourceVersion']) + 1000}")
    assert r.code == 504, r
    # After the history is forgotten, the old continue token is too old.
    fault({"action": "expire"})
    r = curl(base + f"?limit=3&continue={token}")
    assert r.code == 410 and r.json["reason"] == "Expired" and r.json["kind"] == "Status", r


# ============================================================== watch

def test_watch_replays_from_resource_version():
    base = "/api/v1/namespaces/replay/configmaps"
    start = current_rv()
    a = create(base, cm("a"))
    m = ok(curl(base + "/a", "PUT", cm("a", data={"k": "v"})))
    d = ok(curl(base + "/a", "DELETE"))
    w = WatchStream(base + f"?watch=true&resourceVersion={start}")
    try:
        assert w.code == 200 and w.chunked and w.headers["content-type"].startswith("application/json")
        e1, e2, e3 = (expect_event(w, t, "a") for t in ("ADDED", "MODIFIED", "DELETED"))
        assert [e["object"]["metadata"]["resourceVersion"] for e in (e1, e2, e3)] == \
            [a["metadata"]["resourceVersion"], m["metadata"]["resourceVersion"], d["metadata"]["resourceVersion"]]
        assert e2["object"]["data"] == {"k": "v"} and e1["object"]["kind"] == "ConfigMap"
        create(base, cm("b"))
        expect_event(w, "ADDED", "b")
    finally:
        w.close()
    # From the middle: only the later events.
    w = WatchStream(base + f"?watch=1&resourceVersion={a['metadata']['resourceVersion']}")
    try:
        expect_event(w, "MODIFIED", "a")
        expect_event(w, "DELETED", "a")
        expect_event(w, "ADDED", "b")
        expect_quiet(w)
    finally:
        w.close()


def test_watch_without_version_sends_current_state():
    base = "/api/v1/namespaces/initial/configmaps"
    for n in ("y", "x"):
        create(base, cm(n))
    for i, q in enumerate(("?watch=true", "?watch=true&resourceVersion=0", "?watch=true&resourceVersion=")):
        w = WatchStream(base + q)
        try:
            for name in ["x", "y"] + [f"z{j}" for j in range(i)]:
                expect_event(w, "ADDED", name)
            expect_quiet(w, 0.1)
            create(base, cm(f"z{i}"))
            expect_event(w, "ADDED", f"z{i}")
        finally:
            w.close()
    # Legacy /watch/ paths work too.
    w = WatchStream("/api/v1/watch/namespaces/initial/configmaps/x")
    try:
        expect_event(w, "ADDED", "x")
        expect_quiet(w, 0.1)
    finally:
        w.close()
    # Streaming list: initial events, then a bookmark marking their end.
    w = WatchStream(base + "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                           "&allowWatchBookmarks=true&resourceVersion=")
    try:
        names = [expect_event(w, "ADDED")["object"]["metadata"]["name"] for _ in range(5)]
        assert names == ["x", "y", "z0", "z1", "z2"], names
        bm = expect_event(w, "BOOKMARK")
        assert bm["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    finally:
        w.close()


def test_watch_expired_version_gets_410_event():
    base = "/api/v1/namespaces/expired/configmaps"
    old = current_rv()
    create(base, cm("a"))
    create(base, cm("b"))
    assert fault({"action": "expire"})["ok"] is True
    w = WatchStream(base + f"?watch=true&resourceVersion={old}")
    try:
        assert w.code == 200
        ev = expect_event(w, "ERROR")
        st = ev["object"]
        assert st["kind"] == "Status" and st["code"] == 410 and st["reason"] == "Expired", st
        assert w.event() is None and w.end == "clean"
    finally:
        w.close()
    # The current version is fine.
    now = current_rv()
    w = WatchStream(base + f"?watch=true&resourceVersion={now}")
    try:
        create(base, cm("c"))
        expect_event(w, "ADDED", "c")
    finally:
        w.close()


def test_history_limit():
    emu = Emulator("--history", "5", tls=False, auth=False)
    try:
        base = "/api/v1/namespaces/h/configmaps"
        start = current_rv(emu)
        rvs = [int(create(base, cm(f"c{i}"), emu=emu)["metadata"]["resourceVersion"]) for i in range(10)]
        w = WatchStream(base + f"?watch=1&resourceVersion={start}", emu=emu)
        try:
            assert expect_event(w, "ERROR")["object"]["code"] == 410
        finally:
            w.close()
        w = WatchStream(base + f"?watch=1&resourceVersion={rvs[4]}", emu=emu)
        try:
            names = [expect_event(w, "ADDED")["object"]["metadata"]["name"] for _ in range(5)]
            assert names == ["c5", "c6", "c7", "c8", "c9"]
        finally:
            w.close()
        first = ok(curl(base + "?limit=2", emu=emu))
        for i in range(6):
            create(base, cm(f"d{i}"), emu=emu)
        r = curl(base + f"?limit=2&continue={first['metadata']['continue']}", emu=emu)
        assert r.code == 410, r
    finally:
        emu.stop()


def test_watch_bookmarks():
    base = "/api/v1/namespaces/bookmarks/configmaps"
    now = current_rv()
    w = WatchStream(base + f"?watch=true&resourceVersion={now}&allowWatchBookmarks=true")
    try:
        bm = expect_event(w, "BOOKMARK", timeout=3)
        obj = bm["object"]
        assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1", obj
        assert set(obj) == {"kind", "apiVersion", "metadata"}
        assert int(obj["metadata"]["resourceVersion"]) >= now
        c = create(base, cm("after"))
        ev = w.event(3)
        while ev["type"] == "BOOKMARK":
            ev = w.event(3)
        assert ev["type"] == "ADDED"
        bm = expect_event(w, "BOOKMARK", timeout=3)
        assert int(bm["object"]["metadata"]["resourceVersion"]) >= int(c["metadata"]["resourceVersion"])
    finally:
        w.close()
    w = WatchStream(base + f"?watch=true&resourceVersion={now}&timeoutSeconds=1")
    try:
        evs = w.events_until_end(4)
        assert [e["type"] for e in evs] == ["ADDED"], evs
    finally:
        w.close()


def test_watch_timeout_seconds_ends_cleanly():
    t0 = time.monotonic()
    w = WatchStream("/api/v1/namespaces/timeout/configmaps?watch=true&timeoutSeconds=1")
    try:
        assert w.wait_end(5) == "clean"
        took = time.monotonic() - t0
        assert 0.9 <= took < 3, took
    finally:
        w.close()


# ============================================================== selectors

def test_label_and_field_selectors_on_list():
    base = "/api/v1/namespaces/sel/configmaps"
    create(base, cm("a", labels={"app": "web", "tier": "front"}))
    create(base, cm("b", labels={"app": "db", "tier": "back"}))
    create(base, cm("c", labels={"app": "web"}))
    create(base, cm("d"))
    create("/api/v1/namespaces/sel2/configmaps", cm("a", labels={"app": "web"}))

    def names(q, path=base):
        return [i["metadata"]["name"] for i in ok(curl(path + "?" + q))["items"]]

    from urllib.parse import quote
    cases = {"app=web": "ac", "app==web": "ac", "app!=web": "bd", "app in (web,db)": "abc",
             "app notin (web)": "bd", "tier": "ab", "!tier": "cd", "app=web,tier=front": "a",
             "app=web,!tier": "c", "app in (x)": ""}
    for sel, want in cases.items():
        assert "".join(names("labelSelector=" + quote(sel))) == want, (sel, names("labelSelector=" + quote(sel)))
    assert names("fieldSelector=" + quote("metadata.name=b")) == ["b"]
    assert names("fieldSelector=" + quote("metadata.name==b")) == ["b"]
    assert names("fieldSelector=" + quote("metadata.name!=b")) == ["a", "c", "d"]
    assert names("fieldSelector=" + quote("metadata.name=a,metadata.namespace=sel2"), "/api/v1/configmaps") == ["a"]
    both = "labelSelector=app%3Dweb&fieldSelector=" + quote("metadata.namespace!=sel")
    assert names(both, "/api/v1/configmaps") == ["a"]
    r = curl(base + "?fieldSelector=" + quote("spec.foo=bar"))
    assert r.code == 400 and "field label not supported" in r.json["message"], r
    r = curl(base + "?labelSelector=" + quote("app in (web"))
    assert r.code == 400, r
    assert curl("/api/v1/pods?fieldSelector=" + quote("spec.nodeName=node-1")).code == 200
    assert curl("/api/v1/services?fieldSelector=" + quote("spec.type=ClusterIP")).code == 200


def test_selectors_on_watch_follow_transitions():
    base = "/api/v1/namespaces/selwatch/configmaps"
    create(base, cm("pre", labels={"app": "x"}))
    create(base, cm("other", labels={"app": "y"}))
    w = WatchStream(base + "?watch=true&labelSelector=app%3Dx")
    fw = WatchStream(base + "?watch=true&fieldSelector=metadata.name%3Dm")
    try:
        expect_event(w, "ADDED", "pre")
        create(base, cm("m", labels={"app": "x"}))
        expect_event(w, "ADDED", "m")
        expect_event(fw, "ADDED", "m")
        ok(curl(base + "/m", "PATCH", {"metadata": {"labels": {"app": "y"}}}, ctype="application/merge-patch+json"))
        ev = expect_event(w, "DELETED", "m")
        assert ev["object"]["metadata"]["labels"] == {"app": "y"}
        expect_event(fw, "MODIFIED", "m")
        ok(curl(base + "/other", "PATCH", {"data": {"k": "1"}}, ctype="application/merge-patch+json"))
        ok(curl(base + "/m", "PATCH", {"metadata": {"labels": {"app": "x"}}}, ctype="application/merge-patch+json"))
        expect_event(w, "ADDED", "m")
        ok(curl(base + "/m", "PATCH", {"data": {"k": "2"}}, ctype="application/merge-patch+json"))
        expect_event(w, "MODIFIED", "m")
        ok(curl(base + "/m", "DELETE"))
        expect_event(w, "DELETED", "m")
        expect_event(fw, "MODIFIED", "m")
        expect_event(fw, "MODIFIED", "m")
        expect_event(fw, "DELETED", "m")
        expect_quiet(w, 0.2)
        expect_quiet(fw, 0.1)
    finally:
        w.close()
        fw.close()
    r = curl(base + "?watch=true&fieldSelector=nope%3D1")
    assert r.code == 400, r


# ============================================================== auth and TLS

def test_auth_tokens_and_client_certs():
    r = curl("/api/v1/namespaces", token=None)
    assert r.code == 401 and r.json["reason"] == "Unauthorized" and r.json["kind"] == "Status", r
    assert curl("/api/v1/namespaces", token="wrong").code == 401
    assert curl("/emulator/watches", token=None).code == 401
    r = curl("/api/v1/namespaces", token=None, extra=["--cert", cert("client.crt"), "--key", cert("client.key")])
    assert r.code == 200, r
    # A certificate from another CA does not pass the TLS handshake.
    r = curl("/api/v1/namespaces", token=None,
             extra=["--cert", cert("other-client.crt"), "--key", cert("other-client.key")])
    assert r.code == 0, r
    if shutil.which("kubectl"):
        kc = os.path.join(TMP, "kubeconfig-wrong")
        subprocess.run([KUBECONFIG, kc, MAIN.url, cert("ca.crt"), "wrong"], check=True)
        p = kubectl("get", "svc", kubeconfig=kc, check=False)
        assert p.returncode != 0 and "Unauthorized" in p.stderr + p.stdout, p.stderr
        kc = os.path.join(TMP, "kubeconfig-cert")
        subprocess.run([KUBECONFIG, kc, MAIN.url, cert("ca.crt"), "-", "--client-cert", cert("client.crt"),
                        "--client-key", cert("client.key"), "--inline"], check=True)
        assert "kube-system" in kubectl("get", "ns", kubeconfig=kc).stdout


def test_token_file_is_reread():
    tf = os.path.join(TMP, "tokens.csv")
    with open(tf, "w") as f:
        f.write("first,kube-proxy,uid1\n")
    emu = Emulator("--token-file", tf, auth=False)
    try:
        assert curl("/api/v1/namespaces", emu=emu, token="first").code == 200
        assert curl("/api/v1/namespaces", emu=emu, token=None).code == 401
        with open(tf, "w") as f:
            f.write("# rotated\nsecond\n")
        assert curl("/api/v1/namespaces", emu=emu, token="first").code == 401
        assert curl("/api/v1/namespaces", emu=emu, token="second").code == 200
    finally:
        emu.stop()


def test_tls_wrong_ca_fails():
    r = curl("/healthz", ca=cert("other-ca.crt"))
    assert r.code == 0 and r.curl_rc == 60, r
    if shutil.which("kubectl"):
        kc = os.path.join(TMP, "kubeconfig-other-ca")
        subprocess.run([KUBECONFIG, kc, MAIN.url, cert("other-ca.crt"), TOKEN], check=True)
        p = kubectl("get", "ns", kubeconfig=kc, check=False, timeout=60)
        assert p.returncode != 0 and "certificate" in p.stderr, p.stderr
    # The server certificate carries the extra SANs given to gencerts.sh.
    text = subprocess.run(["openssl", "x509", "-in", cert("server.crt"), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    for san in ("IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", "DNS:localhost",
                "IP Address:192.0.2.10", "DNS:apiserver.test"):
        assert san in text, san


# ============================================================== faults

def open_watches(n_per, emu=None):
    ws = []
    for res in ("/api/v1/namespaces/faults/services", "/apis/discovery.k8s.io/v1/namespaces/faults/endpointslices"):
        for _ in range(n_per):
            ws.append(WatchStream(res + "?watch=true", emu=emu))
    wait_until(lambda: watches(emu).get("services", 0) >= n_per and watches(emu).get("endpointslices", 0) >= n_per,
               what="watches to register")
    return ws


def test_fault_drop_watches():
    ws = open_watches(2)
    try:
        assert fault({"action": "drop-watches"})["watches"] >= 4
        for w in ws:
            assert w.wait_end(5) == "abrupt"
        wait_until(lambda: not watches(), what="no open watches")
    finally:
        for w in ws:
            w.close()


def test_fault_garbage():
    ws = open_watches(1)
    try:
        fault({"action": "garbage", "text": "NOT-JSON <<<"})
        for w in ws:
            assert w.line() == b"NOT-JSON <<<"
        fault({"action": "garbage"})
        for w in ws:
            line = w.line()
            try:
                json.loads(line)
                raise AssertionError(f"default garbage parsed as JSON: {line!r}")
            except ValueError:
                pass
        # The stream still works afterwards.
        create("/api/v1/namespaces/faults/services", svc_body("after-garbage"))
        expect_event(ws[0], "ADDED", "after-garbage")
    finally:
        for w in ws:
            w.close()
        ok(curl("/api/v1/namespaces/faults/services/after-garbage", "DELETE"))


def test_fault_truncate():
    ws = open_watches(1)
    try:
        fault({"action": "truncate"})
        for w in ws:
            assert w.wait_end(5) == "abrupt"
            assert w.data and not w.data.endswith(b"\n") and w.data.startswith(b'{"type":')
            try:
                json.loads(w.data)
                raise AssertionError("truncated event parsed as JSON")
            except ValueError:
                pass
    finally:
        for w in ws:
            w.close()


def test_fault_huge_line():
    ws = open_watches(1)
    try:
        fault({"action": "huge-line", "bytes": 3 << 20})
        for w in ws:
            line = w.line(10)
            assert len(line) + 1 == 3 << 20, len(line)
            ev = json.loads(line)
            assert ev["type"] == "BOOKMARK"
        create("/api/v1/namespaces/faults/services", svc_body("after-huge"))
        expect_event(ws[0], "ADDED", "after-huge")
    finally:
        for w in ws:
            w.close()
        ok(curl("/api/v1/namespaces/faults/services/after-huge", "DELETE"))


def test_fault_error_and_retry_after():
    path = "/api/v1/namespaces/ferr/configmaps"
    try:
        fault({"action": "error", "status": 503, "count": 2, "path": path, "retryAfter": 1})
        assert curl("/api/v1/namespaces/other/configmaps").code == 200
        for _ in range(2):
            r = curl(path)
            assert r.code == 503 and r.headers.get("retry-after") == "1", r
            assert r.json["kind"] == "Status" and r.json["code"] == 503 and r.json["reason"] == "ServiceUnavailable"
        assert curl(path).code == 200
        # Default path: any API request, but never /emulator/.
        fault({"action": "error", "status": 500})
        assert curl("/emulator/watches").code == 200
        r = curl("/api/v1/nodes")
        assert r.code == 500 and r.json["reason"] == "InternalError", r
        assert curl("/api/v1/nodes").code == 200
        # Watches can be refused too.
        fault({"action": "error", "status": 429, "path": path, "retryAfter": 2})
        w = WatchStream(path + "?watch=true")
        try:
            assert w.code == 429 and w.headers["retry-after"] == "2"
        finally:
            w.close()
        assert curl("/emulator/faults", "POST", {"action": "bogus"}).code == 400
    finally:
        fault({"action": "reset"})


def test_fault_delay_and_reset():
    path = "/api/v1/namespaces/fdelay/configmaps"
    try:
        fault({"action": "delay", "seconds": 0.6, "count": 1, "path": path})
        t0 = time.monotonic()
        assert curl(path).code == 200
        assert time.monotonic() - t0 >= 0.55
        t0 = time.monotonic()
        assert curl(path).code == 200
        assert time.monotonic() - t0 < 0.5
        # A delayed request does not hold up others.
        fault({"action": "delay", "seconds": 1.5, "count": 1, "path": path})
        slow = threading.Thread(target=curl, args=(path,))
        slow.start()
        t0 = time.monotonic()
        assert curl("/api/v1/namespaces/fdelay/services").code == 200
        assert time.monotonic() - t0 < 1.0
        slow.join(10)
        fault({"action": "delay", "seconds": 5, "count": 10, "path": path})
        fault({"action": "error", "status": 500, "count": 10, "path": path})
        assert len(ok(curl("/emulator/faults"))) == 2
        fault({"action": "reset"})
        t0 = time.monotonic()
        assert curl(path).code == 200 and time.monotonic() - t0 < 1.0
    finally:
        fault({"action": "reset"})


# ============================================================== concurrency, lifecycle

def test_many_watches_and_client_disconnect():
    base = "/api/v1/namespaces/many/configmaps"
    ws = [WatchStream(base + "?watch=true") for _ in range(40)]
    try:
        wait_until(lambda: watches().get("configmaps", 0) >= 40, what="40 watches")
        t0 = time.monotonic()
        assert curl(base).code == 200
        assert time.monotonic() - t0 < 1.0, "a list must not wait for watches"
        create(base, cm("everyone"))
        for w in ws:
            expect_event(w, "ADDED", "everyone")
    finally:
        for w in ws:
            w.close()
    # The server notices the clients are gone and ends those streams.
    wait_until(lambda: watches().get("configmaps", 0) == 0, timeout=5, what="watch threads to end")


def test_ipv6_plain_http_without_auth():
    if not socket.has_ipv6:
        harness.skip("no IPv6")
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        harness.skip("::1 is not available")
    emu = Emulator(tls=False, bind="::1", auth=False)
    try:
        assert ok(curl("/api/v1/namespaces", emu=emu, token=None))["kind"] == "NamespaceList"
        w = WatchStream("/api/v1/namespaces?watch=1&timeoutSeconds=1", emu=emu, token=None)
        try:
            assert len(w.events_until_end(4)) == 4 and w.end == "clean"
        finally:
            w.close()
    finally:
        emu.stop()


def test_sigterm_exits_cleanly_with_open_watch():
    emu = Emulator(tls=False, auth=False)
    w = WatchStream("/api/v1/namespaces/x/services?watch=true", emu=emu, token=None)
    try:
        wait_until(lambda: watches(emu).get("services"), what="the watch")
        t0 = time.monotonic()
        emu.proc.send_signal(signal.SIGTERM)
        assert emu.proc.wait(5) == 0
        assert time.monotonic() - t0 < 3
        assert w.wait_end(3) == "clean"
    finally:
        w.close()
        emu.stop()
    emu = Emulator(tls=False, auth=False)
    emu.proc.send_signal(signal.SIGINT)
    assert emu.proc.wait(5) == 0
