"""End-to-end: Services served by kproxy in a two-node sandbox cluster.

A pod on node1 (and the node itself, and an outside client) send real TCP
and UDP traffic to ClusterIPs and NodePorts while Services and
EndpointSlices change through kubectl; every test asserts which pods
answered and which client address they saw.  The dataplane is the one named
by KPROXY_MODE (nftables by default).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster, endpoint_slice, service  # noqa: E402

MODE = os.environ.get("KPROXY_MODE", "nftables")
C = None


def setup_module():
    global C
    C = Cluster(mode=MODE).up()
    for name, node in (("web-1", "node1"), ("web-2", "node2"), ("web-3", "node2")):
        C.add_pod(name, node, ports={"tcp": [8080], "udp": [8081]})
    C.add_pod("client", "node1")
    C.start_agent("node1")
    C.start_agent("node2")


def teardown_module():
    if C:
        C.down()


def eventually(fn, timeout=5.0, every=0.1):
    """Calls fn until it returns a true value; returns it, or fails with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {v!r})")
        time.sleep(every)


def web_ports():
    return [("http", "TCP", 80, 8080), ("dns", "UDP", 53, 8081)]


def slice_ports():
    return [("http", "TCP", 8080), ("dns", "UDP", 8081)]


def test_clusterip_tcp_and_udp_reach_every_endpoint():
    C.create(service("basic", web_ports(), cluster_ip="10.96.1.1"),
             endpoint_slice("basic", [C.pod_endpoint("web-1"), C.pod_endpoint("web-2")],
                            slice_ports()))
    C.sb.wait_for("pod-client", "tcp", "10.96.1.1", 80)
    names, r = C.names("pod-client", "tcp", "10.96.1.1", 80, count=30)
    assert names == {"web-1", "web-2"}, r
    names, r = C.names("pod-client", "udp", "10.96.1.1", 53, count=30)
    assert names == {"web-1", "web-2"}, r
    # The pod's own address reaches the endpoints, not a translated one.
    assert set(x.client_ip for x in r.replies) == {C.pod_ip("client")}, r


def test_added_endpoint_answers_and_removed_one_stops():
    C.create(service("scale", web_ports(), cluster_ip="10.96.1.2"),
             endpoint_slice("scale", [C.pod_endpoint("web-1")], slice_ports()))
    C.sb.wait_for("pod-client", "tcp", "10.96.1.2", 80)
    C.replace(endpoint_slice("scale", [C.pod_endpoint("web-1"), C.pod_endpoint("web-3")],
                             slice_ports()))
    eventually(lambda: "web-3" in C.names("pod-client", "tcp", "10.96.1.2", 80, count=10)[0])
    C.replace(endpoint_slice("scale", [C.pod_endpoint("web-3")], slice_ports()))
    eventually(lambda: C.names("pod-client", "udp", "10.96.1.2", 53, count=10)[0] == {"web-3"})
    names, r = C.names("pod-client", "tcp", "10.96.1.2", 80, count=20)
    assert names == {"web-3"}, r


def test_deleted_service_stops_answering_and_recreated_one_works():
    C.create(service("gone", web_ports(), cluster_ip="10.96.1.3"),
             endpoint_slice("gone", [C.pod_endpoint("web-2")], slice_ports()))
    C.sb.wait_for("pod-client", "tcp", "10.96.1.3", 80)
    C.delete("service", "gone")
    C.sb.wait_for("pod-client", "tcp", "10.96.1.3", 80, ok=False, timeout_ms=300)
    C.sb.wait_for("pod-client", "udp", "10.96.1.3", 53, ok=False, timeout_ms=300)
    C.create(service("gone", web_ports(), cluster_ip="10.96.1.3"))
    r = C.sb.wait_for("pod-client", "tcp", "10.96.1.3", 80)
    assert r.name == "web-2", r


def test_service_without_endpoints_is_rejected_at_once():
    C.create(service("empty", web_ports(), cluster_ip="10.96.1.4"))
    r = C.sb.wait_for("pod-client", "tcp", "10.96.1.4", 80, ok=False,
                      until=lambda r: r.error == "refused")
    assert r.error == "refused", r
    # Only unready (evicted) endpoints count as none.
    C.create(endpoint_slice("empty", [C.pod_endpoint("web-1", ready=False, serving=False)],
                            slice_ports()))
    time.sleep(0.5)
    r = C.sb.probe("pod-client", "tcp", "10.96.1.4", 80, timeout_ms=1000)
    assert r.error == "refused", r
    r = C.sb.probe("pod-client", "udp", "10.96.1.4", 53, timeout_ms=1000)
    assert r.error == "refused", r


def test_ports_added_to_and_removed_from_a_service_take_effect():
    C.create(service("ports", [("http", "TCP", 80, 8080)], cluster_ip="10.96.1.5"),
             endpoint_slice("ports", [C.pod_endpoint("web-1")], slice_ports()))
    C.sb.wait_for("pod-client", "tcp", "10.96.1.5", 80)
    assert C.sb.probe("pod-client", "udp", "10.96.1.5", 53, timeout_ms=300).all_failed
    C.replace(service("ports", web_ports(), cluster_ip="10.96.1.5"))
    C.sb.wait_for("pod-client", "udp", "10.96.1.5", 53)
    C.replace(service("ports", [("dns", "UDP", 53, 8081)], cluster_ip="10.96.1.5"))
    C.sb.wait_for("pod-client", "tcp", "10.96.1.5", 80, ok=False, timeout_ms=300)
    assert C.sb.probe("pod-client", "udp", "10.96.1.5", 53).ok


def test_ipv6_clusterip():
    svc = service("v6", web_ports(), cluster_ip="fd00:96::10", ipFamilies=["IPv6"])
    C.create(svc, endpoint_slice("v6", [C.pod_endpoint("web-1", family=6),
                                        C.pod_endpoint("web-2", family=6)],
                                 slice_ports(), family="IPv6"))
    C.sb.wait_for("pod-client", "tcp", "fd00:96::10", 80)
    names, r = C.names("pod-client", "tcp", "fd00:96::10", 80, count=30)
    assert names == {"web-1", "web-2"}, r
    names, r = C.names("pod-client", "udp", "fd00:96::10", 53, count=30)
    assert names == {"web-1", "web-2"}, r
    assert set(x.client_ip for x in r.replies) == {C.pod_ip("client", 6)}, r


def test_node_reaches_clusterip():
    C.create(service("fromnode", web_ports(), cluster_ip="10.96.1.6"),
             endpoint_slice("fromnode", [C.pod_endpoint("web-1"), C.pod_endpoint("web-2")],
                            slice_ports()))
    C.sb.wait_for("node1", "tcp", "10.96.1.6", 80)
    names, r = C.names("node1", "udp", "10.96.1.6", 53, count=30)
    assert names == {"web-1", "web-2"}, r


def test_nodeport_from_outside_and_from_a_pod():
    C.create(service("np", [("http", "TCP", 80, 8080, 30081), ("dns", "UDP", 53, 8081, 30081)],
                     cluster_ip="10.96.1.7", type="NodePort"),
             endpoint_slice("np", [C.pod_endpoint("web-1"), C.pod_endpoint("web-2")],
                            slice_ports()))
    node1 = C.sb.node_ip("node1")
    C.sb.wait_for("client", "tcp", node1, 30081)
    names, r = C.names("client", "tcp", node1, 30081, count=30)
    assert names == {"web-1", "web-2"}, r
    names, r = C.names("client", "udp", node1, 30081, count=30)
    assert names == {"web-1", "web-2"}, r
    # Externally-originated traffic to a remote endpoint is masqueraded, so
    # the reply comes back through the node.
    assert sandbox_client_ip() not in set(x.client_ip for x in r.replies), r
    names, r = C.names("pod-client", "tcp", C.sb.node_ip("node2"), 30081, count=20)
    assert names == {"web-1", "web-2"}, r


def sandbox_client_ip():
    import sandbox
    return sandbox.CLIENT_ADDR


def test_pod_reaches_itself_through_its_service():
    C.create(service("hairpin", web_ports(), cluster_ip="10.96.1.8"),
             endpoint_slice("hairpin", [C.pod_endpoint("web-1")], slice_ports()))
    r = C.sb.wait_for("pod-web-1", "tcp", "10.96.1.8", 80)
    assert r.name == "web-1", r
    r = C.sb.probe("pod-web-1", "udp", "10.96.1.8", 53)
    assert r.ok and r.name == "web-1", r


def test_agent_restart_keeps_established_connections():
    C.create(service("restart", web_ports(), cluster_ip="10.96.1.9"),
             endpoint_slice("restart", [C.pod_endpoint("web-1"), C.pod_endpoint("web-2")],
                            slice_ports()))
    C.sb.wait_for("pod-client", "tcp", "10.96.1.9", 80)
    hold = C.sb.spawn("pod-client", [sandbox_probe(), "--hold", "4", "--interval", "50",
                                     "--timeout", "1000", "tcp", "10.96.1.9", "80"],
                      log="hold-restart")
    time.sleep(0.7)
    C.stop_agent("node1")
    # While no agent runs, new connections still work: rules stay in place.
    r = C.sb.probe("pod-client", "tcp", "10.96.1.9", 80)
    assert r.ok, r
    C.start_agent("node1")
    r = C.sb.probe("pod-client", "tcp", "10.96.1.9", 80)
    assert r.ok, r
    hold.wait(timeout=15)
    out = C.sb.log_of(hold)
    assert hold.returncode == 0 and "failed 0" in out, out


def sandbox_probe():
    import sandbox
    return sandbox.PROBE


DUAL_STACK_CLIENT = r"""
import socket, sys
ip, tport, uport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mapped = "::ffff:" + ip
out = []
for i in range(int(sys.argv[4])):
    t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    t.settimeout(3)
    t.connect((mapped, tport))
    peer = t.getpeername()[:2]
    t.sendall(b"hello\n")
    line = t.makefile().readline().split()
    t.close()
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.settimeout(3)
    u.sendto(b"hello\n", (mapped, uport))
    data, src = u.recvfrom(512)
    u.close()
    out.append(f"{line[0]} {peer[0]} {peer[1]} {data.split()[0].decode()} {src[0]} {src[1]}")
print("\n".join(out))
"""


def test_dual_stack_socket_reaches_an_ipv4_service():
    # Java and many runtimes open IPv6 sockets and reach IPv4 addresses as
    # ::ffff:a.b.c.d.  The Service must work, and the application must see
    # the Service's address as its peer, never an endpoint's.
    C.create(service("mapped", web_ports(), cluster_ip="10.96.1.41"),
             endpoint_slice("mapped", [C.pod_endpoint("web-1"), C.pod_endpoint("web-2")],
                            slice_ports()))
    C.sb.wait_for("pod-client", "tcp", "10.96.1.41", 80)
    r = C.sb.exec("pod-client", ["python3", "-c", DUAL_STACK_CLIENT, "10.96.1.41", "80", "53",
                                 "12"], timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.split("\n") if ln]
    assert len(rows) == 12, r.stdout
    assert {row[0] for row in rows} <= {"web-1", "web-2"}, rows
    assert {row[3] for row in rows} <= {"web-1", "web-2"}, rows
    assert len({row[0] for row in rows} | {row[3] for row in rows}) == 2, rows
    for row in rows:
        assert row[1:3] == ["::ffff:10.96.1.41", "80"], row
        assert row[4:6] == ["::ffff:10.96.1.41", "53"], row


def test_headless_and_other_proxy_services_are_ignored():
    svc = service("other", web_ports(), cluster_ip="10.96.1.10")
    svc["metadata"]["labels"] = {"service.kubernetes.io/service-proxy-name": "someone-else"}
    C.create(svc, endpoint_slice("other", [C.pod_endpoint("web-1")], slice_ports()))
    C.create(service("headless", web_ports(), cluster_ip="None"),
             endpoint_slice("headless", [C.pod_endpoint("web-1")], slice_ports()))
    C.create(service("witness", web_ports(), cluster_ip="10.96.1.11"),
             endpoint_slice("witness", [C.pod_endpoint("web-2")], slice_ports()))
    C.sb.wait_for("pod-client", "tcp", "10.96.1.11", 80)
    r = C.sb.probe("pod-client", "tcp", "10.96.1.10", 80, timeout_ms=500)
    assert r.error == "timeout", r
    if MODE == "nftables":
        ruleset = C.nft("node1", "list", "ruleset")
        assert "10.96.1.10" not in ruleset and "10.96.1.11" in ruleset
    else:
        # the frontends in the pinned map, as dotted addresses
        frontends = {".".join(str(int(b, 16)) for b in e["key"][:4])
                     for e in C.bpf_map("node1", "lb4_fe")}
        assert "10.96.1.10" not in frontends and "10.96.1.11" in frontends, frontends


# SCTP cannot be spoken with sockets on kernels built without SCTP, but it can
# be translated: these scripts exchange an INIT and an INIT-ACK chunk over raw
# sockets, enough for conntrack and NAT to do their work both ways.
SCTP_LIB = r"""
import socket, struct
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
def packet(sport, dport, vtag, chunk_type, init_tag):
    # INIT / INIT-ACK: tag, a_rwnd, outbound streams, inbound streams, TSN
    body = struct.pack("!IIHHI", init_tag, 65535, 1, 1, 1)
    chunk = struct.pack("!BBH", chunk_type, 0, 4 + len(body)) + body
    hdr = struct.pack("!HHII", sport, dport, vtag, 0)
    pkt = hdr + chunk
    c = crc32c(pkt)
    return hdr[:8] + struct.pack("<I", c) + chunk
def parse(data):
    ihl = (data[0] & 15) * 4
    src = socket.inet_ntoa(data[12:16])
    sport, dport, vtag = struct.unpack("!HHI", data[ihl:ihl + 8])
    return src, sport, dport, vtag, data[ihl + 12]
"""

SCTP_SERVER = SCTP_LIB + r"""
import sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 132)
s.settimeout(0.2)
end = time.time() + 6
while time.time() < end:
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        continue
    src, sport, dport, vtag, ctype = parse(data)
    if dport == 9132 and ctype == 1:
        print("init-from", src, sport, flush=True)
        s.sendto(packet(dport, sport, 0x11223344, 2, 0x55667788), (src, 0))
        break
"""

SCTP_CLIENT = SCTP_LIB + r"""
import sys, time
vip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 132)
s.settimeout(0.2)
end = time.time() + 4
while time.time() < end:
    s.sendto(packet(47000, port, 0, 1, 0x11223344), (vip, 0))
    t = time.time() + 0.5
    while time.time() < t:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        src, sport, dport, vtag, ctype = parse(data)
        if ctype == 2 and dport == 47000:
            print("init-ack-from", src, sport, flush=True)
            sys.exit(0)
sys.exit(1)
"""


def test_sctp_clusterip_translates_both_ways():
    C.add_pod("sctp-srv", "node2", ports={"tcp": [8080]})
    C.create(service("sctp", [("assoc", "SCTP", 132, 9132)], cluster_ip="10.96.1.12"),
             endpoint_slice("sctp", [C.pod_endpoint("sctp-srv")], [("assoc", "SCTP", 9132)]))
    time.sleep(0.5)
    srv = C.sb.spawn("pod-sctp-srv", [sys.executable, "-c", SCTP_SERVER], log="sctp-server")
    time.sleep(0.3)
    cli = C.sb.exec("pod-client", [sys.executable, "-c", SCTP_CLIENT, "10.96.1.12", "132"],
                    timeout=20)
    srv.wait(timeout=10)
    seen = C.sb.log_of(srv)
    # The endpoint got the INIT on its own port, from the client's address...
    assert f"init-from {C.pod_ip('client')} 47000" in seen, seen
    # ...and the client got the answer from the ClusterIP and Service port.
    assert cli.returncode == 0 and "init-ack-from 10.96.1.12 132" in cli.stdout, cli
