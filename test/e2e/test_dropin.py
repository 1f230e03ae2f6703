"""End-to-end: what an operator replacing kube-proxy relies on.

The manifests in deploy/ are accepted by the API (through kubectl); the
KubeProxyConfiguration of their ConfigMap starts the agent unchanged, next to
the flags kube-proxy's DaemonSet passes; --cleanup removes what kproxy made
and nothing else, and exits 0 when there is nothing; bad flags and bad files
stop the agent with a message that names the problem.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
from cluster import Cluster, endpoint_slice, service  # noqa: E402

MODE = os.environ.get("KPROXY_MODE", "nftables")
C = None
DEPLOY = os.path.join(cluster.REPO, "deploy", "kproxy.yaml")


def setup_module():
    global C
    C = Cluster(mode=MODE).up()
    C.add_pod("web", "node2", ports={"tcp": [8080]})
    C.add_pod("client", "node1")
    C.start_agent("node1")


def teardown_module():
    if C:
        C.down()


def test_deploy_manifests_are_accepted_by_kubectl():
    C.kubectl("create", "namespace", "kube-system", check=False)
    with open(DEPLOY) as f:
        C.kubectl("create", "--validate=false", "-f", "-", input=f.read())
    ds = C.get("daemonset", "kproxy", namespace="kube-system")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in pod["tolerations"], pod["tolerations"]
    ctr = pod["containers"][0]
    assert ctr["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert ctr["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert not ctr["securityContext"].get("privileged")
    paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert {"/sys/fs/bpf", "/sys/fs/cgroup", "/run/xtables.lock"} <= paths, paths
    role = C.get("clusterrole", "system:kproxy", namespace="")
    verbs = {(g, r): set(rule["verbs"]) for rule in role["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert verbs[("", "services")] == {"list", "watch"}
    assert verbs[("discovery.k8s.io", "endpointslices")] == {"list", "watch"}
    assert not any("delete" in v or "*" in v for v in verbs.values()), verbs
    # The DaemonSet's command line is one the agent accepts.
    args = [a.replace("$(NODE_NAME)", "node9") for a in ctr["command"][1:]]
    r = C.sb.exec("node1", [cluster.KPROXY] + [a for a in args if not a.startswith("--config")]
                  + ["--version"])
    assert r.returncode == 0 and r.stdout.startswith("kproxy "), r


def test_the_configmaps_kube_proxy_configuration_starts_the_agent():
    cm = C.get("configmap", "kproxy", namespace="kube-system")
    with tempfile.NamedTemporaryFile("w", suffix=".conf", dir=C.dir, delete=False) as f:
        f.write(cm["data"]["config.conf"])
        conf = f.name
    # As the DaemonSet runs it: --config and --hostname-override; here also
    # the sandbox's kubeconfig, which a Pod would get from its service account.
    argv = [cluster.KPROXY, f"--config={conf}", "--hostname-override=node2",
            f"--kubeconfig={C.kubeconfig}", f"--proxy-mode={MODE}", "--v=2"] \
        + C.agent_flags("node2")
    C.agents["node2"] = C.sb.spawn("node2", argv, log="kproxy-node2-config")
    C.wait_synced("node2")
    log = C.agent_log("node2")
    assert "unknown field" not in log, log
    C.create(service("cfg", [("http", "TCP", 80, 8080)], cluster_ip="10.96.8.1"),
             endpoint_slice("cfg", [C.pod_endpoint("web")], [("http", "TCP", 8080)]))
    r = C.sb.wait_for("node2", "tcp", "10.96.8.1", 80)
    assert r.name == "web", r
    # The file's health address is in use.
    r = C.sb.exec("node2", ["curl", "-s", "--max-time", "2", "http://127.0.0.1:10256/livez"])
    assert r.returncode == 0 and json.loads(r.stdout)["lastUpdated"], r


def test_cleanup_removes_kproxys_state_and_nothing_else():
    # Something of someone else's in node1's nftables.
    C.sb.exec("node1", ["nft", "add", "table", "inet", "someone-else"], check=True)
    C.sb.exec("node1", ["nft", "add", "chain", "inet", "someone-else", "c"], check=True)
    C.stop_agent("node1")
    r = C.cleanup_agent("node1")
    assert r.returncode == 0, r.stderr
    tables = C.sb.exec("node1", ["nft", "list", "tables"], check=True).stdout
    assert "kproxy" not in tables and "someone-else" in tables, tables
    if MODE == "ebpf":
        assert not os.path.exists(C.sb.bpf_pin_path("node1")) or \
            not os.listdir(C.sb.bpf_pin_path("node1")), os.listdir(C.sb.bpf_pin_path("node1"))
    # Nothing left: still success.
    r = C.cleanup_agent("node1")
    assert r.returncode == 0, r.stderr
    # The Service is not served from node1 any more...
    r = C.sb.probe("pod-client", "tcp", "10.96.8.1", 80, timeout_ms=500)
    assert not r.ok, r
    # ...until an agent runs again.
    C.start_agent("node1")
    C.sb.wait_for("pod-client", "tcp", "10.96.8.1", 80)


def test_bad_input_stops_the_agent_with_a_clear_message():
    cases = [
        (["--proxy-mode=userspace"], "--proxy-mode"),
        (["--min-sync-period=soon"], "--min-sync-period"),
        (["--cluster-cidr=10.0.0.0/40"], "--cluster-cidr"),
        (["--no-such-flag"], "unknown flag --no-such-flag"),
        (["--kubeconfig=/nonexistent/kubeconfig"], "/nonexistent/kubeconfig"),
    ]
    bad_conf = os.path.join(C.dir, "bad.conf")
    with open(bad_conf, "w") as f:
        f.write("apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
                "kind: KubeProxyConfiguration\nmode: userspace\n")
    cases.append(([f"--config={bad_conf}"], "mode"))
    broken_kc = os.path.join(C.dir, "broken-kubeconfig")
    with open(broken_kc, "w") as f:
        f.write("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\ncontexts: []\n")
    cases.append(([f"--kubeconfig={broken_kc}"], "nowhere"))
    for args, needle in cases:
        r = C.sb.exec("node2", [cluster.KPROXY, "--hostname-override=x"] + args, timeout=10)
        assert r.returncode == 1 and needle in r.stderr, (args, r.returncode, r.stderr)


def test_version_and_help():
    r = C.sb.exec("node1", [cluster.KPROXY, "--version"])
    assert r.returncode == 0 and r.stdout.startswith("kproxy "), r
    r = C.sb.exec("node1", [cluster.KPROXY, "--help"])
    assert r.returncode == 0 and "--nodeport-addresses" in r.stdout, r


def test_core_endpoints_instead_of_endpoint_slices():
    C.add_pod("ep-a", "node2", ports={"tcp": [8080]})
    C.add_pod("ep-b", "node2", ports={"tcp": [8080]})
    C.create(service("legacy", [("http", "TCP", 80, 8080)], cluster_ip="10.96.8.2"),
             {"apiVersion": "v1", "kind": "Endpoints",
              "metadata": {"name": "legacy", "namespace": "default"},
              "subsets": [{"addresses": [{"ip": C.pod_ip("ep-a"), "nodeName": "node2"}],
                           "notReadyAddresses": [{"ip": C.pod_ip("ep-b")}],
                           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]})
    try:
        C.stop_agent("node1")
        C.start_agent("node1", extra=["--use-core-endpoints"])
        C.sb.wait_for("pod-client", "tcp", "10.96.8.2", 80)
        names, r = C.names("pod-client", "tcp", "10.96.8.2", 80, count=20)
        assert names == {"ep-a"}, r
        # The not-ready address becomes ready.
        C.replace({"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": {"name": "legacy", "namespace": "default"},
                   "subsets": [{"addresses": [{"ip": C.pod_ip("ep-a")},
                                              {"ip": C.pod_ip("ep-b")}],
                                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]})
        C.sb.wait_for("pod-client", "tcp", "10.96.8.2", 80, count=30,
                      until=lambda r: set(r.names) == {"ep-a", "ep-b"})
    finally:
        C.stop_agent("node1")
        C.start_agent("node1")


def test_rules_removed_behind_the_agents_back_come_back():
    if MODE != "nftables":
        return  # the eBPF dataplane keeps its programs in pinned links
    C.create(service("restore", [("http", "TCP", 80, 8080)], cluster_ip="10.96.8.3"),
             endpoint_slice("restore", [C.pod_endpoint("web")], [("http", "TCP", 8080)]))
    try:
        C.stop_agent("node1")
        C.start_agent("node1", extra=["--sync-period=1s"])
        C.sb.wait_for("pod-client", "tcp", "10.96.8.3", 80)
        # Someone flushes a chain, then someone deletes a table.
        C.sb.exec("node1", ["nft", "flush", "chain", "ip", "kproxy", "prerouting"], check=True)
        C.sb.wait_for("pod-client", "tcp", "10.96.8.3", 80, timeout=10)
        C.sb.exec("node1", ["nft", "delete", "table", "ip", "kproxy"], check=True)
        C.sb.wait_for("pod-client", "tcp", "10.96.8.3", 80, timeout=10)
        assert "restoring everything with a full sync" in C.agent_log("node1")
    finally:
        C.stop_agent("node1")
        C.start_agent("node1")
