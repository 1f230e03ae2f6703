"""End-to-end: traffic policies, affinity, firewalling and the ClusterIP checks.

Two nodes with pods on each, clients in pods on both nodes, on a node itself
and outside the cluster.  Each test creates its own Service (distinct
ClusterIPs 10.96.5.x), sends real packets and asserts which endpoint answered
and which source address it saw: externalTrafficPolicy and
internalTrafficPolicy Local, the terminating-endpoint fallback, topology
hints, session affinity and its timeout, loadBalancerSourceRanges,
externalIPs, refusal of unserved ClusterIP ports and the drop of unallocated
ClusterIPs.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sandbox  # noqa: E402
from cluster import Cluster, endpoint_slice, service  # noqa: E402

MODE = os.environ.get("KPROXY_MODE", "nftables")
C = None
PORTS = [("http", "TCP", 80, 8080), ("dns", "UDP", 53, 8081)]
SLICE_PORTS = [("http", "TCP", 8080), ("dns", "UDP", 8081)]


def setup_module():
    global C
    C = Cluster(mode=MODE).up()
    for name, node in (("a1", "node1"), ("a2", "node1"), ("b1", "node2"), ("b2", "node2"),
                       ("b3", "node2")):
        C.add_pod(name, node, ports={"tcp": [8080], "udp": [8081]})
    C.add_pod("cl1", "node1")
    C.add_pod("cl2", "node2")
    for n, zone in (("node1", "zone-a"), ("node2", "zone-b")):
        C.create({"apiVersion": "v1", "kind": "Node",
                  "metadata": {"name": n, "labels": {"topology.kubernetes.io/zone": zone}}})
    # Outside clients reach load-balancer and external IPs through node1.
    C.sb.route("client", sandbox.LB_CIDR, via_node="node1")
    C.sb.route("api", sandbox.LB_CIDR, via_node="node1")
    C.start_agent("node1")
    C.start_agent("node2")


def teardown_module():
    if C:
        C.down()


def names(ns, proto, addr, port, count=24, **kw):
    return C.names(ns, proto, addr, port, count=count, **kw)


def wait_names(ns, proto, addr, port, want, count=24, timeout=6.0, **kw):
    """Waits until exactly the pods in want answer count requests."""
    deadline = time.monotonic() + timeout
    while True:
        got, r = names(ns, proto, addr, port, count=count, **kw)
        if got == set(want) and r.ok:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"{proto} {addr}:{port} from {ns}: wanted {sorted(want)}, "
                                 f"got {sorted(got)}: {r}")
        time.sleep(0.2)


def set_lb_ip(name, ip):
    C.kubectl("patch", "service", name, "--subresource=status", "--type=merge", "-p",
              json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}))


def test_external_traffic_policy_local_keeps_source_and_stays_local():
    C.create(service("etp", PORTS, cluster_ip="10.96.5.1", type="NodePort",
                     externalTrafficPolicy="Local"),
             endpoint_slice("etp", [C.pod_endpoint("a1"), C.pod_endpoint("b1")], SLICE_PORTS))
    np = C.get("service", "etp")["spec"]["ports"][0]["nodePort"]
    r = wait_names("client", "tcp", C.sb.node_ip("node1"), np, {"a1"})
    assert {x.client_ip for x in r.replies} == {sandbox.CLIENT_ADDR}, r
    r = wait_names("client", "tcp", C.sb.node_ip("node2"), np, {"b1"})
    assert {x.client_ip for x in r.replies} == {sandbox.CLIENT_ADDR}, r
    # Inside the cluster the ClusterIP still reaches every endpoint.
    wait_names("pod-cl1", "tcp", "10.96.5.1", 80, {"a1", "b1"}, count=40)


def test_external_traffic_policy_local_drops_without_local_endpoints():
    C.create(service("etp-none", PORTS, cluster_ip="10.96.5.2", type="NodePort",
                     externalTrafficPolicy="Local"),
             endpoint_slice("etp-none", [C.pod_endpoint("b1")], SLICE_PORTS))
    np = C.get("service", "etp-none")["spec"]["ports"][0]["nodePort"]
    wait_names("client", "tcp", C.sb.node_ip("node2"), np, {"b1"})
    # node1 has no endpoint: dropped (a load balancer's health check moves
    # traffic away), not refused.
    r = C.sb.probe("client", "tcp", C.sb.node_ip("node1"), np, timeout_ms=600)
    assert r.error == "timeout", r


def test_pod_reaches_local_policy_load_balancer_ip_from_a_node_without_endpoints():
    C.create(service("etp-lb", PORTS, cluster_ip="10.96.5.3", type="LoadBalancer",
                     externalTrafficPolicy="Local"),
             endpoint_slice("etp-lb", [C.pod_endpoint("b2")], SLICE_PORTS))
    set_lb_ip("etp-lb", "10.90.0.30")
    # cl1 sits on node1, which has no endpoint of this Service.
    wait_names("pod-cl1", "tcp", "10.90.0.30", 80, {"b2"})
    wait_names("pod-cl1", "udp", "10.90.0.30", 53, {"b2"})
    # From outside, node1 has nothing local and drops.
    r = C.sb.probe("client", "tcp", "10.90.0.30", 80, timeout_ms=600)
    assert r.error == "timeout", r


def test_internal_traffic_policy_local():
    C.create(service("itp", PORTS, cluster_ip="10.96.5.4", internalTrafficPolicy="Local"),
             endpoint_slice("itp", [C.pod_endpoint("a1"), C.pod_endpoint("b1")], SLICE_PORTS))
    wait_names("pod-cl1", "tcp", "10.96.5.4", 80, {"a1"})
    wait_names("pod-cl2", "udp", "10.96.5.4", 53, {"b1"})
    wait_names("node1", "tcp", "10.96.5.4", 80, {"a1"})
    C.create(service("itp-none", PORTS, cluster_ip="10.96.5.5", internalTrafficPolicy="Local"),
             endpoint_slice("itp-none", [C.pod_endpoint("b1")], SLICE_PORTS))
    wait_names("pod-cl2", "tcp", "10.96.5.5", 80, {"b1"})
    r = C.sb.probe("pod-cl1", "tcp", "10.96.5.5", 80, timeout_ms=600)
    assert r.error == "timeout", r


def test_terminating_endpoints_are_a_fallback():
    serving_term = {"ready": False, "serving": True, "terminating": True}
    gone = {"ready": False, "serving": False, "terminating": True}
    C.create(service("term", PORTS, cluster_ip="10.96.5.6"),
             endpoint_slice("term", [C.pod_endpoint("a1", **serving_term),
                                     C.pod_endpoint("b1", **gone)], SLICE_PORTS))
    wait_names("pod-cl2", "tcp", "10.96.5.6", 80, {"a1"})
    # A ready endpoint takes over from terminating ones.
    C.replace(endpoint_slice("term", [C.pod_endpoint("a1", **serving_term),
                                      C.pod_endpoint("b2")], SLICE_PORTS))
    wait_names("pod-cl2", "tcp", "10.96.5.6", 80, {"b2"})
    # The same for Local traffic: node1's only endpoint is terminating.
    C.create(service("term-local", PORTS, cluster_ip="10.96.5.7", type="NodePort",
                     externalTrafficPolicy="Local"),
             endpoint_slice("term-local", [C.pod_endpoint("a2", **serving_term),
                                           C.pod_endpoint("b3")], SLICE_PORTS))
    np = C.get("service", "term-local")["spec"]["ports"][0]["nodePort"]
    wait_names("client", "tcp", C.sb.node_ip("node1"), np, {"a2"})
    wait_names("client", "tcp", C.sb.node_ip("node2"), np, {"b3"})


def test_topology_hints_keep_traffic_in_zone():
    def ep(name, zone):
        return C.pod_endpoint(name, zone=zone, hints={"forZones": [{"name": zone}]})

    svc = service("topo", PORTS, cluster_ip="10.96.5.8", trafficDistribution="PreferClose")
    C.create(svc, endpoint_slice("topo", [ep("a1", "zone-a"), ep("b1", "zone-b"),
                                          ep("b2", "zone-b")], SLICE_PORTS))
    wait_names("pod-cl1", "tcp", "10.96.5.8", 80, {"a1"})
    wait_names("pod-cl2", "tcp", "10.96.5.8", 80, {"b1", "b2"})
    # One endpoint without a hint: hints are ignored, every endpoint serves.
    C.replace(endpoint_slice("topo", [ep("a1", "zone-a"), ep("b1", "zone-b"),
                                      C.pod_endpoint("b2")], SLICE_PORTS))
    wait_names("pod-cl1", "tcp", "10.96.5.8", 80, {"a1", "b1", "b2"}, count=48)


def test_session_affinity_sticks_and_can_be_switched():
    eps = [C.pod_endpoint(n) for n in ("a1", "b1", "b2", "b3")]
    C.create(service("aff", PORTS, cluster_ip="10.96.5.9", sessionAffinity="ClientIP"),
             endpoint_slice("aff", eps, SLICE_PORTS))
    C.sb.wait_for("pod-cl1", "tcp", "10.96.5.9", 80)
    got, r = names("pod-cl1", "tcp", "10.96.5.9", 80, count=30)
    assert len(got) == 1 and r.ok, r
    got_udp, r = names("pod-cl1", "udp", "10.96.5.9", 53, count=30)
    assert len(got_udp) == 1 and r.ok, r
    # Off: requests spread again.
    C.replace(service("aff", PORTS, cluster_ip="10.96.5.9"))
    wait_names("pod-cl1", "tcp", "10.96.5.9", 80, {"a1", "b1", "b2", "b3"}, count=60)
    # On again: sticky again.
    C.replace(service("aff", PORTS, cluster_ip="10.96.5.9", sessionAffinity="ClientIP"))

    def sticky():
        g, rr = names("pod-cl1", "tcp", "10.96.5.9", 80, count=30)
        return len(g) == 1 and rr.ok

    deadline = time.monotonic() + 5
    while not sticky():
        assert time.monotonic() < deadline, "affinity did not come back"
        time.sleep(0.2)


def test_session_affinity_for_node_ports_and_the_timeout_expires():
    eps = [C.pod_endpoint(n) for n in ("a1", "a2", "b1", "b2", "b3")]
    C.create(service("aff-np", [("http", "TCP", 80, 8080, 30280)], cluster_ip="10.96.5.10",
                     type="NodePort", sessionAffinity="ClientIP",
                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 2}}),
             endpoint_slice("aff-np", eps, SLICE_PORTS))
    node1 = C.sb.node_ip("node1")
    C.sb.wait_for("client", "tcp", node1, 30280)
    got, r = names("client", "tcp", node1, 30280, count=20)
    assert len(got) == 1 and r.ok, r
    # The client is remembered in exactly one endpoint's set until the
    # timeout passes without new connections.
    if MODE == "nftables":
        ruleset = C.nft("node1", "list", "ruleset")
        assert sandbox.CLIENT_ADDR in ruleset, ruleset
        time.sleep(3.0)
        ruleset = C.nft("node1", "list", "ruleset")
        assert sandbox.CLIENT_ADDR not in ruleset, ruleset
    else:
        # eBPF: the client's affinity entry, live now and expired later
        import socket

        def live_entries():
            now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            out = []
            for e in C.bpf_map("node1", "lb_affinity"):
                key = bytes(int(b, 16) for b in e["key"])
                val = bytes(int(b, 16) for b in e["value"])
                if key[8:12] == socket.inet_aton(sandbox.CLIENT_ADDR) and \
                        now - int.from_bytes(val[:8], "little") < 2 * 10**9:
                    out.append(e)
            return out
        assert live_entries(), C.bpf_map("node1", "lb_affinity")
        time.sleep(3.0)
        assert not live_entries(), C.bpf_map("node1", "lb_affinity")


def test_load_balancer_source_ranges():
    C.create(service("fw", PORTS, cluster_ip="10.96.5.11", type="LoadBalancer",
                     loadBalancerSourceRanges=[sandbox.CLIENT_ADDR + "/32"]),
             endpoint_slice("fw", [C.pod_endpoint("b1")], SLICE_PORTS))
    set_lb_ip("fw", "10.90.0.31")
    wait_names("client", "tcp", "10.90.0.31", 80, {"b1"})
    # The "api" namespace is another outside host, not in the range.
    r = C.sb.probe("api", "tcp", "10.90.0.31", 80, timeout_ms=600)
    assert r.error == "timeout", r
    # Widening the range lets it in.
    C.replace(service("fw", PORTS, cluster_ip="10.96.5.11", type="LoadBalancer",
                      loadBalancerSourceRanges=[sandbox.FABRIC_CIDR]))
    set_lb_ip("fw", "10.90.0.31")
    wait_names("api", "tcp", "10.90.0.31", 80, {"b1"})


def test_external_ips_reach_endpoints():
    C.create(service("ext", PORTS, cluster_ip="10.96.5.12", externalIPs=["10.90.0.40"]),
             endpoint_slice("ext", [C.pod_endpoint("b1"), C.pod_endpoint("b2")], SLICE_PORTS))
    r = wait_names("client", "tcp", "10.90.0.40", 80, {"b1", "b2"})
    # Cluster policy: the reply must come back through node1, so the
    # source is node1's.
    assert {x.client_ip for x in r.replies} == {C.sb.node_ip("node1")}, r
    wait_names("client", "udp", "10.90.0.40", 53, {"b1", "b2"})


def test_same_port_number_on_tcp_and_udp_and_multiple_ports():
    C.create(service("multi", [("dns-tcp", "TCP", 53, 8080), ("dns-udp", "UDP", 53, 8081),
                               ("web", "TCP", 8000, 8080)], cluster_ip="10.96.5.13"),
             endpoint_slice("multi", [C.pod_endpoint("a1"), C.pod_endpoint("b1")],
                            [("dns-tcp", "TCP", 8080), ("dns-udp", "UDP", 8081),
                             ("web", "TCP", 8080)]))
    wait_names("pod-cl1", "tcp", "10.96.5.13", 53, {"a1", "b1"})
    wait_names("pod-cl1", "udp", "10.96.5.13", 53, {"a1", "b1"})
    wait_names("pod-cl1", "tcp", "10.96.5.13", 8000, {"a1", "b1"})


def test_unserved_cluster_ip_port_is_refused():
    C.create(service("oneport", [("http", "TCP", 80, 8080)], cluster_ip="10.96.5.14"),
             endpoint_slice("oneport", [C.pod_endpoint("b1")], [("http", "TCP", 8080)]))
    wait_names("pod-cl1", "tcp", "10.96.5.14", 80, {"b1"})
    r = C.sb.probe("pod-cl1", "tcp", "10.96.5.14", 81, timeout_ms=1000)
    assert r.error == "refused", r
    # From the node itself the rejected datagram fails at sendto() already.
    r = C.sb.probe("node1", "udp", "10.96.5.14", 53, timeout_ms=1000)
    assert r.error in ("refused", "error:Operation not permitted"), r


def test_unallocated_cluster_ip_is_dropped():
    # Something answers 10.96.99.99 beyond node1 (the outside client), so
    # only kproxy's drop keeps the packet from it.
    C.sb.ip("client", "addr", "add", "10.96.99.99/32", "dev", "lo")
    C.sb.route("node1", "10.96.99.99/32", via=sandbox.CLIENT_ADDR)
    C.sb.route("node2", "10.96.99.99/32", via=sandbox.CLIENT_ADDR)
    C.sb.route("client", "10.244.1.0/24", via_node="node1")
    srv = C.sb.spawn("client", [sandbox.ECHOD, "--name", "outside", "--tcp", "8080"],
                     log="outside-echod")
    try:
        C.sb.wait_listen("client", "127.0.0.1", 8080)
        if MODE == "nftables":
            set_of_cidrs = C.nft("node1", "list", "set", "ip", "kproxy", "service-cidrs")
            assert "10.96.0.0/16" in set_of_cidrs, set_of_cidrs
        r = C.sb.probe("pod-cl1", "tcp", "10.96.99.99", 8080, timeout_ms=600)
        assert r.error == "timeout", r
        # An address outside the ServiceCIDRs is routed as usual.
        C.sb.ip("client", "addr", "add", "10.97.0.1/32", "dev", "lo")
        C.sb.route("node1", "10.97.0.1/32", via=sandbox.CLIENT_ADDR)
        r = C.sb.probe("pod-cl1", "tcp", "10.97.0.1", 8080, timeout_ms=1000)
        assert r.ok and r.name == "outside", r
    finally:
        C.sb.kill(srv)


def test_publish_not_ready_addresses_follow_the_slice():
    # The endpoints controller marks unready pods ready in the slice when the
    # Service publishes not-ready addresses; kproxy goes by the slice.
    C.create(service("pnr", PORTS, cluster_ip="10.96.5.15", publishNotReadyAddresses=True),
             endpoint_slice("pnr", [C.pod_endpoint("b1", ready=False)], SLICE_PORTS))
    time.sleep(0.5)
    r = C.sb.probe("pod-cl1", "tcp", "10.96.5.15", 80, timeout_ms=600)
    assert r.error == "refused", r
    C.replace(endpoint_slice("pnr", [C.pod_endpoint("b1", ready=True)], SLICE_PORTS))
    wait_names("pod-cl1", "tcp", "10.96.5.15", 80, {"b1"})


def test_rolling_update_loses_no_request():
    C.create(service("roll", PORTS, cluster_ip="10.96.5.16", type="NodePort"),
             endpoint_slice("roll", [C.pod_endpoint("a1"), C.pod_endpoint("b1")], SLICE_PORTS))
    np = C.get("service", "roll")["spec"]["ports"][0]["nodePort"]
    wait_names("pod-cl1", "tcp", "10.96.5.16", 80, {"a1", "b1"})
    # New connections every 20 ms, through the ClusterIP and the NodePort,
    # while the endpoints roll from (a1, b1) to (a2, b2) one at a time, the
    # old ones first turning terminating.
    term = {"ready": False, "serving": True, "terminating": True}
    loads = [C.sb.spawn("pod-cl1", [sandbox.PROBE, "--count", "150", "--interval", "20",
                                    "--timeout", "1000", "tcp", "10.96.5.16", "80"],
                        log="roll-cip"),
             C.sb.spawn("client", [sandbox.PROBE, "--count", "150", "--interval", "20",
                                   "--timeout", "1000", "tcp", C.sb.node_ip("node1"), str(np)],
                        log="roll-np")]
    steps = [[C.pod_endpoint("a1"), C.pod_endpoint("b1"), C.pod_endpoint("a2")],
             [C.pod_endpoint("a1", **term), C.pod_endpoint("b1"), C.pod_endpoint("a2")],
             [C.pod_endpoint("b1"), C.pod_endpoint("a2"), C.pod_endpoint("b2")],
             [C.pod_endpoint("b1", **term), C.pod_endpoint("a2"), C.pod_endpoint("b2")],
             [C.pod_endpoint("a2"), C.pod_endpoint("b2")]]
    for eps in steps:
        time.sleep(0.4)
        C.replace(endpoint_slice("roll", eps, SLICE_PORTS))
    for p in loads:
        p.wait(timeout=30)
    for p in loads:
        out = C.sb.log_of(p)
        assert p.returncode == 0 and "ERROR" not in out, out
    wait_names("pod-cl1", "tcp", "10.96.5.16", 80, {"a2", "b2"})


def test_conntrack_invalid_packets_are_dropped():
    # A TCP segment with SYN and FIN together can belong to no connection:
    # conntrack marks it INVALID, and node2 must not forward it to b3.
    capture = C.sb.spawn("pod-b3", [sys.executable, "-c", RAW_CAPTURE], log="raw-capture")
    time.sleep(0.3)
    send = C.sb.exec("pod-cl1", [sys.executable, "-c", RAW_SEND, C.pod_ip("cl1"),
                                 C.pod_ip("b3")])
    assert send.returncode == 0, send.stderr
    capture.wait(timeout=10)
    out = C.sb.log_of(capture)
    assert "valid-seen" in out and "invalid-seen" not in out, out


# Receives TCP segments to port 9999 for two seconds; reports which kinds came.
RAW_CAPTURE = r"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.settimeout(0.2)
end = time.time() + 2.0
seen = set()
while time.time() < end:
    try:
        data = s.recv(2048)
    except socket.timeout:
        continue
    ihl = (data[0] & 15) * 4
    dport = int.from_bytes(data[ihl + 2:ihl + 4], "big")
    flags = data[ihl + 13]
    if dport == 9999:
        seen.add("invalid-seen" if flags & 0x03 == 0x03 else "valid-seen")
print(" ".join(sorted(seen)) or "nothing", flush=True)
"""

# Sends a SYN+FIN segment, then a plain SYN, to port 9999 of the given address.
RAW_SEND = r"""
import socket, struct, sys, time
src, dst = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff
def seg(flags, sport):
    hdr = struct.pack("!HHIIBBHHH", sport, 9999, 1000, 0, 5 << 4, flags, 1024, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
    return hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
s.sendto(seg(0x03, 40001), (dst, 0))
time.sleep(0.2)
s.sendto(seg(0x02, 40002), (dst, 0))
"""


def test_masquerade_all_and_node_port_addresses():
    try:
        C.stop_agent("node1")
        C.sb.add_node_address("node1", "10.91.0.11")
        C.start_agent("node1", extra=["--masquerade-all",
                                      f"--nodeport-addresses={sandbox.FABRIC_CIDR}"])
        C.create(service("masq", PORTS, cluster_ip="10.96.5.17", type="NodePort"),
                 endpoint_slice("masq", [C.pod_endpoint("b1")], SLICE_PORTS))
        np = C.get("service", "masq")["spec"]["ports"][0]["nodePort"]
        r = wait_names("pod-cl1", "tcp", "10.96.5.17", 80, {"b1"})
        # Even pod traffic to a ClusterIP leaves with node1's address.
        assert {x.client_ip for x in r.replies} == {C.sb.node_ip("node1")}, r
        wait_names("node1", "tcp", C.sb.node_ip("node1"), np, {"b1"})
        # The extra address is outside --nodeport-addresses.
        r = C.sb.probe("node1", "tcp", "10.91.0.11", np, timeout_ms=600)
        assert not r.ok, r
    finally:
        C.stop_agent("node1")
        C.start_agent("node1")
    # Back to the defaults: NodePorts answer on every node address.
    wait_names("node1", "tcp", "10.91.0.11", np, {"b1"})
    r = wait_names("pod-cl1", "tcp", "10.96.5.17", 80, {"b1"})
    assert {x.client_ip for x in r.replies} == {C.pod_ip("cl1")}, r
