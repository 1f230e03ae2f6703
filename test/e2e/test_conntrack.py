"""End-to-end: UDP conntrack entries do not outlive the endpoints they point at.

A UDP client that keeps its source port (as DNS resolvers and proxies do)
stays on one conntrack entry.  These tests send from a fixed source port,
change the Service's endpoints through the API, and check that the very same
5-tuple reaches the new endpoint: for a ClusterIP, a NodePort, an
internalTrafficPolicy Local Service and a host-network client; and that a
client which started sending before the Service had endpoints gets through
once it has.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sandbox  # noqa: E402
from cluster import Cluster, endpoint_slice, service  # noqa: E402

MODE = os.environ.get("KPROXY_MODE", "nftables")
C = None
PORTS = [("dns", "UDP", 53, 8081)]
SLICE_PORTS = [("dns", "UDP", 8081)]
_next_port = [41000]


def setup_module():
    global C
    C = Cluster(mode=MODE).up()
    C.add_pod("client", "node1")
    C.start_agent("node1")
    C.start_agent("node2")


def teardown_module():
    if C:
        C.down()


def source_port():
    _next_port[0] += 1
    return _next_port[0]


def probe_from(ns, addr, port, sport, timeout_ms=800):
    """One UDP request from a fixed source address and port."""
    if ns.startswith("pod-"):
        src = C.pod_ip(ns[4:])
    elif ns == "client":
        src = sandbox.CLIENT_ADDR
    else:
        src = C.sb.node_ip(ns)
    return C.sb.probe(ns, "udp", addr, port, bind=f"{src}:{sport}", timeout_ms=timeout_ms)


def eventually_answers(ns, addr, port, sport, want, timeout=6.0):
    deadline = time.monotonic() + timeout
    while True:
        r = probe_from(ns, addr, port, sport, timeout_ms=400)
        if r.ok and r.name == want:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"{addr}:{port} from {ns}:{sport} never reached {want}: {r}")
        time.sleep(0.1)


def cycle_server(name, vip, node_old, node_new, ns="pod-client", np=None, svc_extra=None,
                 target=None):
    """Serves name from a pod on node_old, then replaces it with one on node_new
    and checks the same client 5-tuple follows."""
    old, new = f"{name}-a", f"{name}-b"
    C.add_pod(old, node_old, ports={"udp": [8081]})
    C.add_pod(new, node_new, ports={"udp": [8081]})
    ports = [("dns", "UDP", 53, 8081, np)] if np else PORTS
    C.create(service(name, ports, cluster_ip=vip, type="NodePort" if np else "ClusterIP",
                     **(svc_extra or {})),
             endpoint_slice(name, [C.pod_endpoint(old)], SLICE_PORTS))
    addr, port = target or (vip, 53)
    sport = source_port()
    eventually_answers(ns, addr, port, sport, old)
    # The old pod goes away and a new one takes its place.
    C.sb.remove_pod(old)
    C.replace(endpoint_slice(name, [C.pod_endpoint(new)], SLICE_PORTS))
    r = eventually_answers(ns, addr, port, sport, new)
    if ns.startswith("pod-"):
        # Pod traffic to a ClusterIP keeps its source: the same 5-tuple.
        assert r.client_port == sport, r


def test_udp_clusterip_follows_a_replaced_endpoint():
    cycle_server("ct-cip", "10.96.4.1", "node2", "node2")


def test_udp_nodeport_follows_a_replaced_endpoint():
    cycle_server("ct-np", "10.96.4.2", "node2", "node1", ns="client", np=30153,
                 target=(C.sb.node_ip("node1"), 30153))


def test_udp_internal_local_policy_follows_a_replaced_endpoint():
    cycle_server("ct-itp", "10.96.4.3", "node1", "node1",
                 svc_extra={"internalTrafficPolicy": "Local"})


def test_udp_host_network_client_follows_a_replaced_endpoint():
    cycle_server("ct-host", "10.96.4.4", "node2", "node1", ns="node1")


def test_udp_client_that_started_before_the_service_gets_through():
    C.add_pod("late", "node2", ports={"udp": [8081]})
    sport = source_port()
    # Nothing serves 10.96.4.5 yet: the datagram leaves through the node's
    # default route and conntrack records an untranslated flow.
    r = probe_from("pod-client", "10.96.4.5", 53, sport, timeout_ms=300)
    assert not r.ok, r
    C.create(service("ct-late", PORTS, cluster_ip="10.96.4.5"),
             endpoint_slice("ct-late", [C.pod_endpoint("late")], SLICE_PORTS))
    eventually_answers("pod-client", "10.96.4.5", 53, sport, "late")


def test_udp_traffic_starts_when_unready_endpoints_become_ready():
    C.add_pod("unready", "node2", ports={"udp": [8081]})
    C.create(service("ct-unready", PORTS, cluster_ip="10.96.4.6"),
             endpoint_slice("ct-unready", [C.pod_endpoint("unready", ready=False)],
                            SLICE_PORTS))
    sport = source_port()
    time.sleep(0.3)
    r = probe_from("pod-client", "10.96.4.6", 53, sport, timeout_ms=300)
    assert r.error == "refused", r
    C.replace(endpoint_slice("ct-unready", [C.pod_endpoint("unready", ready=True)],
                             SLICE_PORTS))
    eventually_answers("pod-client", "10.96.4.6", 53, sport, "unready")


def test_udp_service_scaled_to_zero_and_back_recovers():
    C.add_pod("zero", "node2", ports={"udp": [8081]})
    C.create(service("ct-zero", PORTS, cluster_ip="10.96.4.7"),
             endpoint_slice("ct-zero", [C.pod_endpoint("zero")], SLICE_PORTS))
    sport = source_port()
    eventually_answers("pod-client", "10.96.4.7", 53, sport, "zero")
    C.replace(endpoint_slice("ct-zero", [], SLICE_PORTS))
    deadline = time.monotonic() + 5
    while True:
        r = probe_from("pod-client", "10.96.4.7", 53, sport, timeout_ms=300)
        if r.error == "refused":
            break
        assert time.monotonic() < deadline, f"scaled to zero but not refused: {r}"
        time.sleep(0.1)
    C.replace(endpoint_slice("ct-zero", [C.pod_endpoint("zero")], SLICE_PORTS))
    eventually_answers("pod-client", "10.96.4.7", 53, sport, "zero")


def test_agent_restart_keeps_live_udp_entries():
    C.add_pod("keep", "node2", ports={"udp": [8081]})
    C.create(service("ct-keep", PORTS, cluster_ip="10.96.4.8"),
             endpoint_slice("ct-keep", [C.pod_endpoint("keep")], SLICE_PORTS))
    sport = source_port()
    eventually_answers("pod-client", "10.96.4.8", 53, sport, "keep")
    entries = lambda: C.sb.exec("node1", ["conntrack", "-L", "-p", "udp", "--orig-dst",
                                          "10.96.4.8"]).stdout
    if MODE == "nftables":
        assert f"sport={sport}" in entries()
    C.stop_agent("node1")
    C.start_agent("node1")
    # The restart's full sync reconciled conntrack, and the live entry stayed.
    if MODE == "nftables":
        assert f"sport={sport}" in entries(), entries()
    r = probe_from("pod-client", "10.96.4.8", 53, sport)
    assert r.ok and r.name == "keep", r
