"""End-to-end: how the agent proves who it is to the API server.

A second API emulator in the "api" namespace accepts client certificates
signed by the test CA and bearer tokens listed in a file it re-reads on each
request, so that a test can revoke a token.  Against it the agent must:
authenticate with a client certificate given as files or inline data; fail,
and program nothing, with a certificate from another CA; and, configured
in-cluster (KUBERNETES_SERVICE_HOST/PORT and the service-account token and
CA under /var/run/secrets/kubernetes.io/serviceaccount), pick up a rotated
token on its own once the old one is refused.

The in-cluster agent runs in a private mount namespace with a tmpfs over
/run, so its service-account directory is its own and the host's /run is
never touched; the test reaches the token through /proc/PID/root.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import sandbox  # noqa: E402
from cluster import Cluster, endpoint_slice, service  # noqa: E402

MODE = os.environ.get("KPROXY_MODE", "nftables")
C = None
PORT2 = cluster.API_PORT + 1
URL2 = f"https://{sandbox.API_ADDR}:{PORT2}"
CLIENT = "pod-au-client"
SA_DIR = "/run/secrets/kubernetes.io/serviceaccount"
ADMIN_KC = None  # kubeconfig for the second emulator (client certificate)
ACCEPTED = None  # the second emulator's token file
_next = [10]


def setup_module():
    global C, ADMIN_KC, ACCEPTED
    C = Cluster(mode=MODE).up()
    C.add_pod("au-web", "node1", ports={"tcp": [8080]})
    C.add_pod("au-client", "node1", ports={})
    C.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}})
    pki = os.path.join(C.dir, "pki")
    ACCEPTED = os.path.join(C.dir, "accepted-tokens")
    with open(ACCEPTED, "w") as f:
        f.write("first-token\n")
    C.sb.spawn("api", [
        sys.executable, cluster.APISERVER, "--bind", "::", "--port", str(PORT2),
        "--tls-cert", os.path.join(pki, "server.crt"),
        "--tls-key", os.path.join(pki, "server.key"),
        "--client-ca", os.path.join(pki, "ca.crt"), "--token-file", ACCEPTED,
        "--bookmark-interval", "5"], log="apiserver2")
    ADMIN_KC = kubeconfig("kc-admin", "--client-cert", os.path.join(pki, "client.crt"),
                          "--client-key", os.path.join(pki, "client.key"))
    deadline = time.monotonic() + 15
    while kubectl2("get", "--raw", "/healthz", check=False).returncode != 0:
        assert time.monotonic() < deadline, "second API emulator did not start"
        time.sleep(0.1)
    kubectl2("create", "--validate=false", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}}))


def teardown_module():
    if C:
        C.down()


# ----------------------------------------------------------------- helpers

def kubeconfig(name, *opts, token="-", ca=None):
    path = os.path.join(C.dir, name)
    ca = ca or os.path.join(C.dir, "pki", "ca.crt")
    subprocess.run(["sh", cluster.KUBECONFIG_SH, path, URL2, ca, token] + list(opts),
                   check=True)
    return path


def kubectl2(*args, input=None, check=True):
    argv = ["kubectl", "--kubeconfig", ADMIN_KC, "--request-timeout=10s",
            "--cache-dir", os.path.join(C.dir, "kubectl-cache2")] + list(args)
    r = C.sb.exec("api", argv, input=input, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {r.stderr.strip()}")
    return r


def create_served(name):
    """A Service on the second emulator; returns its ClusterIP."""
    ip = f"10.96.7.{_next[0]}"
    _next[0] += 1
    for obj in (service(name, [("http", "TCP", 80, 8080)], cluster_ip=ip),
                endpoint_slice(name, [C.pod_endpoint("au-web")], [("http", "TCP", 8080)])):
        kubectl2("create", "--validate=false", "-f", "-", input=json.dumps(obj))
    return ip


def answers(ip, timeout=10.0):
    return C.sb.wait_for(CLIENT, "tcp", ip, 80, timeout=timeout)


def silent(ip):
    return not C.sb.probe(CLIENT, "tcp", ip, 80, timeout_ms=500).ok


def run_agent(extra):
    C.stop_agent("node1")
    return C.start_agent("node1", extra=extra, wait=False)


def wait_log(pattern, timeout=10.0):
    deadline = time.monotonic() + timeout
    while pattern not in C.agent_log("node1"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not in the agent's log:\n"
                                 + C.agent_log("node1")[-3000:])
        time.sleep(0.1)


# ------------------------------------------------------------------- tests

def test_client_certificate_files():
    ip = create_served("cert-files")
    run_agent([f"--kubeconfig={kubeconfig('kc-cert', '--client-cert', os.path.join(C.dir, 'pki', 'client.crt'), '--client-key', os.path.join(C.dir, 'pki', 'client.key'))}"])
    C.wait_synced("node1")
    answers(ip)
    # Created after the agent started: reaches it through the watch.
    answers(create_served("cert-files-later"))


def test_client_certificate_inline_data():
    pki = os.path.join(C.dir, "pki")
    kc = kubeconfig("kc-cert-inline", "--client-cert", os.path.join(pki, "client.crt"),
                    "--client-key", os.path.join(pki, "client.key"), "--inline")
    with open(kc) as f:
        text = f.read()
    assert "client-certificate-data:" in text and "client-key-data:" in text, text
    run_agent([f"--kubeconfig={kc}"])
    C.wait_synced("node1")
    answers(create_served("cert-inline"))


def test_client_certificate_of_another_ca_is_refused():
    pki = os.path.join(C.dir, "pki")
    run_agent([f"--kubeconfig={kubeconfig('kc-other-cert', '--client-cert', os.path.join(pki, 'other-client.crt'), '--client-key', os.path.join(pki, 'other-client.key'))}"])
    wait_log("list failed")
    # The rules the previous agent left stay (a restart never breaks
    # traffic), but nothing new reaches this one.
    ip = create_served("cert-other")
    time.sleep(1)
    assert "sync done" not in C.agent_log("node1")
    assert C.agents["node1"].poll() is None, "the agent must keep retrying, not exit"
    assert silent(ip)


def test_in_cluster_token_is_reread_when_it_rotates():
    pki = os.path.join(C.dir, "pki")
    C.stop_agent("node1")
    script = (f"mount -t tmpfs kproxy-sa /run && mkdir -p {SA_DIR} && "
              f"cp {os.path.join(pki, 'ca.crt')} {SA_DIR}/ca.crt && "
              f"echo first-token > {SA_DIR}/token && exec \"$@\"")
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
            cluster.KPROXY, "--hostname-override=node1", f"--proxy-mode={MODE}",
            f"--cluster-cidr={sandbox.CLUSTER_CIDR}", "--min-sync-period=0",
            "--v=2"] + C.agent_flags("node1")
    env = dict(os.environ, KUBERNETES_SERVICE_HOST=sandbox.API_ADDR,
               KUBERNETES_SERVICE_PORT=str(PORT2))
    env.pop("KUBECONFIG", None)
    C.agents["node1"] = C.sb.spawn("node1", argv, env=env, log="kproxy-node1-incluster")
    C.wait_synced("node1")
    assert "in-cluster" in C.agent_log("node1"), C.agent_log("node1")
    ip = create_served("rotating")
    answers(ip)

    # The token is rotated: the file the kubelet projects changes and the
    # server stops accepting the old one.
    pid = kproxy_pid(C.agents["node1"].pid)
    tmp = f"/proc/{pid}/root{SA_DIR}/token.new"
    with open(tmp, "w") as f:
        f.write("second-token\n")
    os.rename(tmp, f"/proc/{pid}/root{SA_DIR}/token")
    with open(ACCEPTED, "w") as f:
        f.write("second-token\n")
    # Cut the watches: the agent has to come back with a new request, and
    # only the new token lets it in.
    C.sb.exec("api", ["curl", "-sS", "--fail", "--max-time", "10",
                      "--cacert", os.path.join(pki, "ca.crt"),
                      "--cert", os.path.join(pki, "client.crt"),
                      "--key", os.path.join(pki, "client.key"),
                      "-X", "POST", "-H", "Content-Type: application/json",
                      "--data-binary", '{"action":"drop-watches"}',
                      URL2 + "/emulator/faults"], check=True)
    later = create_served("rotated")
    answers(later, timeout=15)
    answers(ip)
    assert "401" not in C.agent_log("node1"), C.agent_log("node1")[-2000:]


def kproxy_pid(pid):
    """The kproxy process under the nsenter/unshare/sh chain started as pid."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        todo = [pid]
        while todo:
            p = todo.pop()
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == "kproxy":
                        return p
                with open(f"/proc/{p}/task/{p}/children") as f:
                    todo += [int(x) for x in f.read().split()]
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError("no kproxy process under the agent's launcher")
