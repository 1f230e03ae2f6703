"""End-to-end: the agent's health, metrics and health-check node ports.

What a load balancer and a monitoring system see: /healthz and /livez on
10256 with kube-proxy's JSON body, /metrics on 10249 with kube-proxy's metric
names, and for an externalTrafficPolicy Local Service a health-check node
port on each node that answers 200 where the Service has ready local
endpoints and 503 where it has none, or only terminating ones.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster, endpoint_slice, service  # noqa: E402

MODE = os.environ.get("KPROXY_MODE", "nftables")
C = None
PORTS = [("http", "TCP", 80, 8080)]
SLICE_PORTS = [("http", "TCP", 8080)]


def setup_module():
    global C
    C = Cluster(mode=MODE).up()
    C.add_pod("a1", "node1", ports={"tcp": [8080]})
    C.add_pod("b1", "node2", ports={"tcp": [8080]})
    for n in ("node1", "node2"):
        C.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}})
    C.start_agent("node1")
    C.start_agent("node2")


def teardown_module():
    if C:
        C.down()


def http_get(ns, url):
    """(status, headers dict, body) of a GET made from namespace ns."""
    r = C.sb.exec(ns, ["curl", "-s", "-i", "--max-time", "3", url])
    assert r.returncode == 0, f"curl {url} from {ns}: {r.returncode} {r.stderr}"
    head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def eventually(fn, timeout=6.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.1)


def test_healthz_and_livez_answer_like_kube_proxy():
    status, headers, body = http_get("node1", "http://127.0.0.1:10256/healthz")
    assert status == 200, body
    assert headers.get("content-type", "").startswith("application/json"), headers
    doc = json.loads(body)
    assert doc["nodeEligible"] is True and "lastUpdated" in doc and "currentTime" in doc, doc
    status, _, body = http_get("node1", "http://127.0.0.1:10256/livez")
    assert status == 200, body
    # Served on every address, as kube-proxy's 0.0.0.0:10256 is.
    status, _, _ = http_get("client", f"http://{C.sb.node_ip('node2')}:10256/healthz")
    assert status == 200


def test_metrics_use_kube_proxy_names():
    C.create(service("m", PORTS, cluster_ip="10.96.6.1"),
             endpoint_slice("m", [C.pod_endpoint("a1")], SLICE_PORTS))
    C.sb.wait_for("node1", "tcp", "10.96.6.1", 80)
    status, headers, body = http_get("node1", "http://127.0.0.1:10249/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain"), headers
    for name in ("kubeproxy_sync_proxy_rules_duration_seconds_bucket",
                 "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                 "kubeproxy_sync_full_proxy_rules_duration_seconds_count",
                 "kubeproxy_sync_proxy_rules_service_changes_total",
                 "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                 "kubeproxy_proxy_healthz_total", "kproxy_objects_rejected_total",
                 "kproxy_dataplane_elements", "process_resident_memory_bytes"):
        assert name in body, f"{name} missing from /metrics"
    changes = [ln for ln in body.splitlines()
               if ln.startswith("kubeproxy_sync_proxy_rules_service_changes_total")]
    assert changes and float(changes[0].split()[-1]) >= 1, changes
    # Metrics stay on loopback by default.
    r = C.sb.exec("client", ["curl", "-s", "--max-time", "2",
                             f"http://{C.sb.node_ip('node1')}:10249/metrics"])
    assert r.returncode != 0


def metric_value(body, name):
    for ln in body.splitlines():
        if ln.startswith(name + " ") or ln.startswith(name + "{"):
            return float(ln.split()[-1])
    return None


def test_network_programming_duration_is_measured_from_the_trigger_time():
    # The endpoints controller stamps each slice it writes with the time of
    # the change that caused it; the agent measures from there to the rules
    # being in the kernel.
    name = "kubeproxy_network_programming_duration_seconds_count"
    _, _, body = http_get("node1", "http://127.0.0.1:10249/metrics")
    before = metric_value(body, name)
    assert before is not None, "histogram missing from /metrics"
    sl = endpoint_slice("np", [C.pod_endpoint("a1")], SLICE_PORTS)
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    sl["metadata"].setdefault("annotations", {})[
        "endpoints.kubernetes.io/last-change-trigger-time"] = stamp
    C.create(service("np", PORTS, cluster_ip="10.96.6.3"), sl)
    C.sb.wait_for("node1", "tcp", "10.96.6.3", 80)

    def counted():
        _, _, b = http_get("node1", "http://127.0.0.1:10249/metrics")
        return metric_value(b, name) >= before + 1 and b

    body = eventually(counted)
    # Observed into the +Inf bucket at least, and a sum that moved.
    assert metric_value(body, "kubeproxy_network_programming_duration_seconds_sum") > 0
    # A slice without the annotation is programmed but not measured.
    count = metric_value(body, name)
    C.replace(endpoint_slice("np", [C.pod_endpoint("a1"), C.pod_endpoint("b1")],
                             SLICE_PORTS))
    time.sleep(1.5)
    _, _, body = http_get("node1", "http://127.0.0.1:10249/metrics")
    assert metric_value(body, name) == count


def test_health_check_node_port_reports_local_endpoints():
    C.create(service("hc", PORTS, cluster_ip="10.96.6.2", type="LoadBalancer",
                     externalTrafficPolicy="Local"),
             endpoint_slice("hc", [C.pod_endpoint("a1")], SLICE_PORTS))
    hc = C.get("service", "hc")["spec"]["healthCheckNodePort"]
    node1, node2 = C.sb.node_ip("node1"), C.sb.node_ip("node2")

    def answer(node_ip):
        try:
            return http_get("client", f"http://{node_ip}:{hc}/healthz")
        except AssertionError:
            return None

    st = eventually(lambda: (a := answer(node1)) and a[0] == 200 and a)
    doc = json.loads(st[2])
    assert doc["service"] == {"namespace": "default", "name": "hc"}, doc
    assert doc["localEndpoints"] == 1 and doc["serviceProxyHealthy"] is True, doc
    assert st[1]["x-load-balancing-endpoint-weight"] == "1", st[1]
    st = eventually(lambda: (a := answer(node2)) and a)
    assert st[0] == 503 and json.loads(st[2])["localEndpoints"] == 0, st
    # Only a terminating endpoint left on node1: the load balancer must move
    # away, so the check fails even though the endpoint still serves.
    C.replace(endpoint_slice("hc", [C.pod_endpoint("a1", ready=False, serving=True,
                                                   terminating=True)], SLICE_PORTS))
    st = eventually(lambda: (a := answer(node1)) and a[0] == 503 and a)
    assert json.loads(st[2])["localEndpoints"] == 0, st
    # The Service goes: so does its health-check port.
    C.delete("service", "hc")
    eventually(lambda: answer(node1) is None)


def test_healthz_fails_while_the_node_is_being_deleted():
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node2"},
            "spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler",
                                 "effect": "NoSchedule"}]}}
    C.replace(node)
    try:
        eventually(lambda: http_get("node2", "http://127.0.0.1:10256/healthz")[0] == 503)
        status, _, body = http_get("node2", "http://127.0.0.1:10256/healthz")
        assert json.loads(body)["nodeEligible"] is False, body
        # Alive all the same: /livez does not care about the node.
        assert http_get("node2", "http://127.0.0.1:10256/livez")[0] == 200
    finally:
        C.replace({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node2"}})
    eventually(lambda: http_get("node2", "http://127.0.0.1:10256/healthz")[0] == 200)
