"""End-to-end checks that only the eBPF dataplane has.

A connected UDP socket (a DNS client, a proxy) is rewritten once, at
connect(); when its endpoint is deleted the agent ends the socket so that the
application reconnects to a live one, instead of talking to the old endpoint
for ever.  And with --bpf-lb-sock-hostns-only, pods' packets leave the pod
still addressed to the ClusterIP (what a service mesh in the pod needs to
see) and are balanced on the pod's veth.  Skipped in other modes.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster, endpoint_slice, service  # noqa: E402
from harness import skip  # noqa: E402

MODE = os.environ.get("KPROXY_MODE", "nftables")
C = None
PORTS = [("http", "TCP", 80, 8080), ("dns", "UDP", 53, 8081)]
SLICE_PORTS = [("http", "TCP", 8080), ("dns", "UDP", 8081)]


def setup_module():
    global C
    if MODE != "ebpf":
        skip("eBPF mode only")
    C = Cluster(mode=MODE).up()
    for name, node in (("old", "node2"), ("new", "node2"), ("w1", "node2")):
        C.add_pod(name, node, ports={"tcp": [8080], "udp": [8081]})
    C.add_pod("client", "node1")
    C.start_agent("node1")
    C.start_agent("node2")


def teardown_module():
    if C:
        C.down()


# Keeps one connected UDP socket: asks once, waits for the marker file, then
# keeps asking on the same socket and reports what happened to it.
UDP_CLIENT = r"""
import os, socket, sys, time
vip, marker = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
s.connect((vip, 53))
s.send(b"hello\n")
print("first", s.recv(200).decode().split()[0], flush=True)
while not os.path.exists(marker):
    time.sleep(0.05)
end = time.time() + 8
while time.time() < end:
    try:
        s.send(b"hello\n")
        print("answer", s.recv(200).decode().split()[0], flush=True)
    except socket.timeout:
        print("timeout", flush=True)
    except OSError as e:
        print("ended", e.errno, flush=True)
        break
    time.sleep(0.2)
"""


def test_connected_udp_socket_of_a_deleted_endpoint_is_ended():
    C.create(service("sticky", PORTS, cluster_ip="10.96.7.1"),
             endpoint_slice("sticky", [C.pod_endpoint("old")], SLICE_PORTS))
    C.sb.wait_for("pod-client", "udp", "10.96.7.1", 53)
    marker = os.path.join(C.dir, "switched")
    cli = C.sb.spawn("pod-client", [sys.executable, "-c", UDP_CLIENT, "10.96.7.1", marker],
                     log="udp-connected")
    deadline = time.monotonic() + 5
    while "first" not in C.sb.log_of(cli):
        assert time.monotonic() < deadline and cli.poll() is None, C.sb.log_of(cli)
        time.sleep(0.05)
    assert "first old" in C.sb.log_of(cli), C.sb.log_of(cli)
    # "old" keeps running (so a pinned socket would still get answers from
    # it), but it is no longer an endpoint.
    C.replace(endpoint_slice("sticky", [C.pod_endpoint("new")], SLICE_PORTS))
    time.sleep(0.5)
    open(marker, "w").close()
    cli.wait(timeout=15)
    out = C.sb.log_of(cli)
    assert "ended" in out, out
    assert "answer old" not in out, out
    # A new socket goes to the live endpoint.
    r = C.sb.probe("pod-client", "udp", "10.96.7.1", 53, connected=True)
    assert r.ok and r.name == "new", r


# Sends one TCP SYN to addr:port through a connect() and captures, on the
# pod's own eth0, the destination the SYN left with.
SYN_CAPTURE = r"""
import socket, struct, sys, threading, time
vip, port = sys.argv[1], int(sys.argv[2])
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
cap.bind(("eth0", 0))
cap.settimeout(0.2)
def connect():
    c = socket.socket()
    c.settimeout(2)
    try:
        c.connect((vip, port))
        c.send(b"hello\n")
        print("answer", c.recv(200).decode().split()[0], flush=True)
    except OSError as e:
        print("error", e, flush=True)
t = threading.Thread(target=connect)
t.start()
end = time.time() + 3
while time.time() < end:
    try:
        frame, addr = cap.recvfrom(2048)
    except socket.timeout:
        continue
    if addr[2] != socket.PACKET_OUTGOING:
        continue
    if frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    if ip[9] != 6:
        continue
    ihl = (ip[0] & 15) * 4
    flags = ip[ihl + 13]
    if flags & 0x02:
        print("syn-to", socket.inet_ntoa(ip[16:20]), int.from_bytes(ip[ihl + 2:ihl + 4], "big"),
              flush=True)
        break
t.join()
"""


def test_host_only_socket_balancing_leaves_the_clusterip_on_pod_packets():
    C.create(service("mesh", PORTS, cluster_ip="10.96.7.2"),
             endpoint_slice("mesh", [C.pod_endpoint("w1")], SLICE_PORTS))
    C.sb.wait_for("pod-client", "tcp", "10.96.7.2", 80)
    # Default: the socket hook rewrote the destination before any packet.
    r = C.sb.exec("pod-client", [sys.executable, "-c", SYN_CAPTURE, "10.96.7.2", "80"])
    assert f"syn-to {C.pod_ip('w1')} 8080" in r.stdout and "answer w1" in r.stdout, r
    try:
        C.stop_agent("node1")
        C.start_agent("node1", extra=["--bpf-lb-sock-hostns-only"])
        C.sb.wait_for("pod-client", "tcp", "10.96.7.2", 80)
        r = C.sb.exec("pod-client", [sys.executable, "-c", SYN_CAPTURE, "10.96.7.2", "80"])
        assert "syn-to 10.96.7.2 80" in r.stdout and "answer w1" in r.stdout, r
        # Host processes are still balanced at the socket.
        r = C.sb.probe("node1", "tcp", "10.96.7.2", 80)
        assert r.ok and r.name == "w1", r
    finally:
        C.stop_agent("node1")
        C.start_agent("node1")
