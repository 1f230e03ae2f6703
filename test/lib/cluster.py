"""A sandbox Kubernetes cluster for end-to-end tests and the demo.

On top of the network-namespace sandbox (sandbox.py) it runs the API server
emulator over TLS with a bearer token in the "api" namespace, writes a
kubeconfig, drives the emulator with kubectl, and runs kproxy agents inside
node namespaces.  Objects are built as Python dicts shaped like the real API's
and sent through ``kubectl create/replace/delete -f -``.

    with Cluster(mode="nftables") as c:
        c.add_pod("web-1", "node1", ports={"tcp": [8080]})
        c.start_agent("node1")
        c.create(service("web", ports=[("http", "TCP", 80, 8080)], cluster_ip="10.96.0.10"))
        c.create(endpoint_slice("web", [c.pod_endpoint("web-1")], ports=[("http", "TCP", 8080)]))
        c.sb.wait_for("pod-web-1", "tcp", "10.96.0.10", 80)
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sandbox  # noqa: E402
from sandbox import Sandbox  # noqa: E402

REPO = sandbox.REPO_ROOT
KPROXY = os.environ.get("KPROXY_BIN", os.path.join(REPO, "build", "kproxy"))
APISERVER = os.path.join(REPO, "test", "apiserver", "apiserver.py")
GENCERTS = os.path.join(REPO, "test", "apiserver", "gencerts.sh")
KUBECONFIG_SH = os.path.join(REPO, "test", "apiserver", "kubeconfig.sh")
TOKEN = "kproxy-e2e-token"
API_PORT = 6443


def service(name, ports, cluster_ip=None, type="ClusterIP", namespace="default", **spec):
    """A Service.  ports: [(name, protocol, port, targetPort[, nodePort])]."""
    sp = []
    for p in ports:
        d = {"name": p[0], "protocol": p[1], "port": p[2], "targetPort": p[3]}
        if len(p) > 4 and p[4]:
            d["nodePort"] = p[4]
        if not d["name"]:
            del d["name"]
        sp.append(d)
    body = {"type": type, "ports": sp}
    if cluster_ip:
        body["clusterIP"] = cluster_ip
        if isinstance(cluster_ip, str) and cluster_ip != "None":
            body["clusterIPs"] = [cluster_ip]
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


def endpoint(addr, node=None, ready=True, serving=None, terminating=None, zone=None, hints=None):
    ep = {"addresses": [addr], "conditions": {"ready": ready}}
    if serving is not None:
        ep["conditions"]["serving"] = serving
    if terminating is not None:
        ep["conditions"]["terminating"] = terminating
    if node:
        ep["nodeName"] = node
    if zone:
        ep["zone"] = zone
    if hints:
        ep["hints"] = hints
    return ep


def endpoint_slice(service_name, endpoints, ports, name=None, family="IPv4",
                   namespace="default"):
    """An EndpointSlice for service_name.  ports: [(name, protocol, port)]."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name or f"{service_name}-{family.lower()}", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": family,
        "endpoints": endpoints,
        "ports": [({"name": p[0]} if p[0] else {}) | {"protocol": p[1], "port": p[2]}
                  for p in ports],
    }


class Cluster:
    def __init__(self, mode="nftables", nodes=2, ipv6=True, agent_args=()):
        self.mode = mode
        self.agent_args = list(agent_args)
        # eBPF mode: each node gets its own cgroup and pin directory, so that
        # two agents on one host keep apart and nothing touches the real root
        self.sb = Sandbox(nodes=nodes, ipv6=ipv6, bpf=(mode == "ebpf"))
        self.dir = None
        self.kubeconfig = None
        self.api_proc = None
        self.agents = {}

    # ----- lifecycle

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()

    def up(self):
        try:
            self.sb.up()
            self.dir = tempfile.mkdtemp(prefix="kproxy-e2e-")
            subprocess.run(["sh", GENCERTS, os.path.join(self.dir, "pki"), sandbox.API_ADDR,
                            sandbox.API_ADDR6], check=True)
            pki = os.path.join(self.dir, "pki")
            self.api_proc = self.sb.spawn("api", [
                sys.executable, APISERVER, "--bind", "::", "--port", str(API_PORT),
                "--tls-cert", os.path.join(pki, "server.crt"),
                "--tls-key", os.path.join(pki, "server.key"),
                "--token", TOKEN, "--bookmark-interval", "5"], log="apiserver")
            self.kubeconfig = os.path.join(self.dir, "kubeconfig")
            subprocess.run(["sh", KUBECONFIG_SH, self.kubeconfig,
                            f"https://{sandbox.API_ADDR}:{API_PORT}",
                            os.path.join(pki, "ca.crt"), TOKEN], check=True)
            self._wait_api()
        except BaseException:
            self.down()
            raise
        return self

    def _wait_api(self, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            r = self.kubectl("get", "--raw", "/healthz", check=False, timeout=5)
            if r.returncode == 0:
                return
            if self.api_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("API emulator did not start:\n" + self.sb.log_of(self.api_proc)
                                   + r.stderr)
            time.sleep(0.1)

    def down(self):
        for node in list(self.agents):
            try:
                self.stop_agent(node)
            except Exception:
                pass
        if self.mode == "ebpf" and self.sb._up:
            # the agent's own --cleanup first; the sandbox's teardown then
            # removes whatever is left (after a crash, say)
            for node in self.sb.nodes:
                try:
                    self.cleanup_agent(node)
                except Exception:
                    pass
        try:
            self.sb.down()
        finally:
            if self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    # ----- API objects

    def kubectl(self, *args, input=None, check=True, timeout=30):
        argv = ["kubectl", "--kubeconfig", self.kubeconfig, "--request-timeout=10s",
                "--cache-dir", os.path.join(self.dir, "kubectl-cache")] + list(args)
        r = self.sb.exec("api", argv, input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {r.stderr.strip()}")
        return r

    def create(self, *objs):
        for obj in objs:
            self.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(obj))

    def replace(self, *objs):
        for obj in objs:
            self.kubectl("replace", "--validate=false", "-f", "-", input=json.dumps(obj))

    def apply(self, *objs):
        """Creates each object, or replaces it when it exists."""
        for obj in objs:
            r = self.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(obj),
                             check=False)
            if r.returncode != 0:
                if "AlreadyExists" not in r.stderr and "already exists" not in r.stderr:
                    raise RuntimeError(f"kubectl create failed: {r.stderr.strip()}")
                self.replace(obj)

    def delete(self, kind, name, namespace="default"):
        self.kubectl("delete", kind, name, "-n", namespace, "--wait=false")

    def get(self, kind, name, namespace="default"):
        return json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)

    # ----- pods

    def add_pod(self, name, node, ports=None):
        return self.sb.add_pod(name, node, ports=ports)

    def pod_ip(self, name, family=4):
        return self.sb.pod_ip(name, family)

    def pod_endpoint(self, name, family=4, **kw):
        pod = self.sb.pods[name]
        return endpoint(self.sb.pod_ip(name, family), node=pod.node, **kw)

    # ----- agents

    def start_agent(self, node, extra=(), wait=True):
        argv = [KPROXY, f"--kubeconfig={self.kubeconfig}", f"--hostname-override={node}",
                f"--proxy-mode={self.mode}",
                f"--cluster-cidr={sandbox.CLUSTER_CIDR},{sandbox.CLUSTER_CIDR6}",
                "--min-sync-period=0", "--v=2"] + self.agent_flags(node) + self.agent_args \
            + list(extra)
        proc = self.sb.spawn(node, argv, log=f"kproxy-{node}")
        self.agents[node] = proc
        if wait:
            self.wait_synced(node)
        return proc

    def agent_flags(self, node):
        """Flags the mode needs on this node (eBPF: the node's cgroup and pin path)."""
        if self.mode != "ebpf":
            return []
        return [f"--bpf-cgroup-path={self.sb.cgroup_path(node)}",
                f"--bpf-pin-path={self.sb.bpf_pin_path(node)}"]

    def cleanup_agent(self, node):
        """Runs kproxy --cleanup on the node; returns the CompletedProcess."""
        return self.sb.exec(node, [KPROXY, "--cleanup", "--v=2"] + self.agent_flags(node),
                            timeout=30)

    def bpf_map(self, node, name):
        """The entries of a pinned map of the node's agent, as bpftool's JSON (eBPF mode)."""
        import glob
        paths = sorted(glob.glob(os.path.join(self.sb.bpf_pin_path(node), "v*", name)))
        if not paths:
            return []
        r = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", paths[-1]],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"bpftool map dump {paths[-1]}: {r.stderr.strip()}")
        return json.loads(r.stdout or "[]")

    def agent_log(self, node):
        return self.sb.log_of(self.agents[node]) if node in self.agents else ""

    def wait_synced(self, node, timeout=15):
        deadline = time.monotonic() + timeout
        proc = self.agents[node]
        while "sync done" not in self.agent_log(node):
            if proc.poll() is not None:
                raise RuntimeError(f"kproxy on {node} exited with {proc.returncode}:\n"
                                   + self.agent_log(node))
            if time.monotonic() > deadline:
                raise RuntimeError(f"kproxy on {node} did not sync:\n" + self.agent_log(node))
            time.sleep(0.05)

    def stop_agent(self, node, sig=signal.SIGTERM, timeout=10):
        proc = self.agents.pop(node, None)
        if not proc:
            return None
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.sb._forget(proc.pid)
        return proc.returncode

    def nft(self, node, *args):
        return self.sb.exec(node, ["nft"] + list(args), check=True).stdout

    # ----- traffic

    def names(self, ns, proto, addr, port, count=20, **kw):
        """The set of pod names that answered count requests."""
        r = self.sb.probe(ns, proto, addr, port, count=count, **kw)
        return set(r.names), r
