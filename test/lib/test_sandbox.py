"""Self-test of the namespace sandbox (sandbox.py) and of the echod and probe tools.

Run with ``python3 test/lib/harness.py test/lib/test_sandbox.py`` as root.  It
builds a two-node dual-stack sandbox with pods on both nodes and checks the
topology, the answers echod gives over TCP, UDP and HTTP (right pod name,
the client's real address), probe's error kinds and time-outs, the hold mode,
and that teardown, the CLI's ``cleanup`` and the safety nets leave no
namespace or process behind.  Every sandbox it makes is removed by name; it
never touches sandboxes that other runs may have on the machine.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import sandbox as S  # noqa: E402


def skip(reason):
    # the harness catches its own Skip class, which is __main__'s when it runs
    # as a script and differs from the one a fresh "import harness" defines
    runner = sys.modules.get("__main__")
    raise getattr(runner, "Skip", harness.Skip)(reason)

SANDBOX_PY = os.path.join(HERE, "sandbox.py")
SB = None
SETUP_SECONDS = None
PREFIXES = []          # every sandbox this module made, checked at the end
PIDS = []              # echod processes seen, checked at the end


def setup_module():
    global SB, SETUP_SECONDS
    if os.geteuid() != 0:
        skip("needs root")
    S.ensure_tools()
    t0 = time.monotonic()
    SB = S.Sandbox()
    PREFIXES.append(SB.prefix)
    SB.up()
    SB.add_pod("a", "node1")
    SB.add_pod("b", "node1", ports={"tcp": [8080, 80], "udp": [8081, 53], "sctp": [9000]})
    SB.add_pod("c", "node2")
    SB.add_pod("d", "node2")
    SETUP_SECONDS = time.monotonic() - t0
    PIDS.extend(p.server_pid for p in SB.pods.values())


def teardown_module():
    _reap_children()
    if SB is not None:
        SB.down()


def _ns_with(prefix):
    return [n for n in S.netns_list() if n.startswith(prefix + "-")]


def _run_cli(*args, timeout=30):
    return subprocess.run([sys.executable, SANDBOX_PY] + list(args), capture_output=True,
                          text=True, timeout=timeout)


# --------------------------------------------------------------- topology

def test_setup_is_fast():
    print(f"    2 nodes + 4 pods set up in {SETUP_SECONDS:.3f}s")
    assert SETUP_SECONDS < 2.0, SETUP_SECONDS


def test_layout():
    present = set(S.netns_list())
    for role in ["fabric", "node1", "node2", "client", "api", "pod-a", "pod-b", "pod-c", "pod-d"]:
        assert f"{SB.prefix}-{role}" in present, role
    st = S.load_state(SB.prefix)
    assert st["prefix"] == SB.prefix and set(st["pods"]) == {"a", "b", "c", "d"}
    assert sorted(st["namespaces"]) == sorted(SB.namespaces())
    # interface names fit IFNAMSIZ, addresses are where the constants say
    for role in ["fabric", "node1", "node2", "pod-a"]:
        links = json.loads(SB.ip(role, "-j", "link", "show").stdout)
        assert all(len(link["ifname"]) <= 15 for link in links)
    addrs = json.loads(SB.ip("node2", "-j", "addr", "show", "dev", "eth0").stdout)[0]["addr_info"]
    local = {a["local"] for a in addrs}
    assert {"10.89.0.12", "fd00:89::12"} <= local, local
    assert SB.pod_ip("a") == "10.244.1.10" and SB.pod_ip("b") == "10.244.1.11"
    assert SB.pod_ip("c") == "10.244.2.10" and SB.pod_ip("c", 6) == "fd00:244:2::10"
    routes = SB.ip("node1", "route").stdout
    assert "10.244.2.0/24 via 10.89.0.12" in routes and "10.244.1.10 dev veth1p10" in routes
    assert SB.sysctl("node1", "net.ipv4.ip_forward") == "1"
    assert SB.sysctl("node1", "net.ipv6.conf.all.forwarding") == "1"
    assert SB.sysctl("node1", "net.ipv4.conf.all.rp_filter") == "0"
    assert SB.sysctl("node1", f"net.ipv4.conf.{SB.pods['a'].veth}.proxy_arp") == "1"
    assert SB.sysctl("pod-a", "net.ipv6.conf.eth0.accept_dad") == "0"
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read().strip()
    # the host's own settings are not this sandbox's business
    assert host_forward in ("0", "1")


# ----------------------------------------------------------- connectivity

def test_pod_to_pod_across_nodes():
    for fam in (4, 6):
        r = SB.probe("pod-a", "tcp", SB.pod_ip("c", fam), 8080).expect_ok()
        assert r.name == "c" and r.client_ip == SB.pod_ip("a", fam), r
        r = SB.probe("pod-d", "tcp", SB.pod_ip("b", fam), 8080).expect_ok()
        assert r.name == "b" and r.client_ip == SB.pod_ip("d", fam), r
        r = SB.probe("pod-a", "tcp", SB.pod_ip("b", fam), 8080).expect_ok()   # same node
        assert r.name == "b" and r.client_ip == SB.pod_ip("a", fam), r


def test_node_to_pod():
    for fam in (4, 6):
        r = SB.probe("node1", "tcp", SB.pod_ip("c", fam), 8080).expect_ok()   # remote pod
        assert r.name == "c" and r.client_ip == SB.node_ip("node1", fam), r
        r = SB.probe("node2", "udp", SB.pod_ip("c", fam), 8081).expect_ok()   # local pod
        assert r.name == "c" and r.client_ip == SB.node_ip("node2", fam), r


def test_tcp_udp_http_answers():
    for fam in (4, 6):
        dst, src = SB.pod_ip("d", fam), SB.pod_ip("b", fam)
        for proto, port, opts in [("tcp", 8080, {}), ("udp", 8081, {}),
                                  ("udp", 8081, {"connected": True}), ("http", 8080, {})]:
            r = SB.probe("pod-b", proto, dst, port, count=3, **opts).expect_ok()
            assert r.names == ["d"] * 3 and {x.client_ip for x in r.replies} == {src}, r
            assert len({x.client_port for x in r.replies}) == 3, r    # a new socket each
            if proto == "http":
                assert all(x.status == 200 for x in r.replies)
        for proto, port in [("tcp", 8080), ("udp", 8081), ("http", 8080)]:
            r = SB.probe("pod-b", proto, dst, port, count=3, same_socket=True).expect_ok()
            assert len({x.client_port for x in r.replies}) == 1, r   # one socket
    # the second ports of pod b
    assert SB.probe("pod-a", "tcp", SB.pod_ip("b"), 80).expect_ok().name == "b"
    assert SB.probe("pod-a", "udp", SB.pod_ip("b", 6), 53).expect_ok().name == "b"


def test_http_clients():
    out = SB.exec("node2", ["curl", "-sS", "--max-time", "2",
                            f"http://[{SB.pod_ip('a', 6)}]:8080/x",
                            f"http://[{SB.pod_ip('a', 6)}]:8080/y"], check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 2 and all(x.startswith("a fd00:89::12 ") for x in lines), out
    assert lines[0] == lines[1], "curl's second request should reuse the connection"
    head = SB.exec("node2", ["curl", "-sS", "-I", "--max-time", "2",
                             f"http://{SB.pod_ip('a')}:8080/"], check=True).stdout
    assert head.startswith("HTTP/1.1 200") and "Content-Length:" in head, head
    # pipelined requests on one raw connection, then a line-mode connection
    script = (
        "import socket,sys\n"
        "s=socket.create_connection((sys.argv[1],8080),timeout=2)\n"
        "s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET / HTTP/1.1\\r\\nHost: x\\r\\n"
        "Connection: close\\r\\n\\r\\n')\n"
        "d=b''\n"
        "while True:\n"
        "  x=s.recv(4096)\n"
        "  if not x: break\n"
        "  d+=x\n"
        "print(d.count(b'HTTP/1.1 200 OK'))\n"
        "s=socket.create_connection((sys.argv[1],8080),timeout=2)\n"
        "s.sendall(b'one\\ntwo\\nthree')\n"
        "s.shutdown(socket.SHUT_WR)\n"
        "d=b''\n"
        "while True:\n"
        "  x=s.recv(4096)\n"
        "  if not x: break\n"
        "  d+=x\n"
        "print(d.count(b'\\n'))\n")
    out = SB.exec("pod-c", [sys.executable, "-c", script, SB.pod_ip("a")], check=True).stdout
    assert out.split() == ["2", "3"], out


def test_client_through_route():
    r = SB.probe("client", "tcp", SB.pod_ip("c"), 8080, timeout_ms=300)
    assert r.error == "unreachable", r        # the client has no route to pods
    for fam in (4, 6):
        SB.route("client", SB.pod_cidr("node2", fam), via_node="node2")
    try:
        for fam in (4, 6):
            r = SB.probe("client", "tcp", SB.pod_ip("c", fam), 8080).expect_ok()
            addr = S.CLIENT_ADDR if fam == 4 else S.CLIENT_ADDR6
            assert r.name == "c" and r.client_ip == addr, r
            r = SB.probe("client", "udp", SB.pod_ip("d", fam), 8081).expect_ok()
            assert r.name == "d" and r.client_ip == addr, r
    finally:
        for fam in (4, 6):
            SB.unroute("client", SB.pod_cidr("node2", fam))


def test_api_namespace():
    proc = SB.spawn("api", [S.ECHOD, "--name", "api", "--tcp", "6443"])
    try:
        r = SB.wait_listen("node1", S.API_ADDR, 6443, timeout=3)
        assert r.first.answer == "connected", r
        for node in ("node1", "node2"):
            for fam, addr in ((4, S.API_ADDR), (6, S.API_ADDR6)):
                r = SB.probe(node, "http", addr, 6443).expect_ok()
                assert r.name == "api" and r.client_ip == SB.node_ip(node, fam), r
            r = SB.probe("pod-c", "tcp", S.API_ADDR6, 6443).expect_ok()    # api routes to pods
            assert r.name == "api" and r.client_ip == SB.pod_ip("c", 6), r
    finally:
        SB.kill(proc)
    assert proc.poll() is not None


# a UDP server that replies from whatever address routing picks
NAIVE_UDP = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 8099))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(f"naive {peer[0]} {peer[1]}\\n".encode(), peer)
"""


def test_node_address_and_host_network():
    SB.add_node_address("node2", "10.89.0.22")
    SB.add_node_address("node2", "fd00:89::22")
    SB.add_node_address("node2", "10.90.0.5", dev="extra0")
    proc = SB.spawn("node2", [S.ECHOD, "--name", "host2", "--tcp", "8090", "--udp", "8090"])
    try:
        assert "10.89.0.22" in SB.node_ips("node2") and "10.90.0.5" in SB.node_ips("node2", 4)
        SB.wait_for("client", "tcp", "10.89.0.22", 8090, timeout=3)
        r = SB.probe("client", "udp", "fd00:89::22", 8090).expect_ok()
        assert r.name == "host2" and r.client_ip == S.CLIENT_ADDR6, r
        SB.route("client", "10.90.0.5/32", via_node="node2")
        r = SB.probe("client", "tcp", "10.90.0.5", 8090).expect_ok()
        assert r.name == "host2" and r.client_ip == S.CLIENT_ADDR, r
        # UDP replies leave from the address the request went to ...
        r = SB.probe("client", "udp", "10.90.0.5", 8090).expect_ok()
        assert r.name == "host2", r
        # ... and probe does not take a reply from another address for an answer
        naive = SB.spawn("node2", [sys.executable, "-c", NAIVE_UDP])
        assert SB.wait_for("client", "udp", "10.89.0.12", 8099, timeout=3).name == "naive"
        r = SB.probe("client", "udp", "10.90.0.5", 8099, timeout_ms=300)
        assert r.error == "timeout" and r.first.stray_from == "10.89.0.12:8099", r
        SB.kill(naive)
        r = SB.probe("pod-a", "tcp", "10.89.0.22", 8090).expect_ok()
        assert r.client_ip == SB.pod_ip("a"), r
    finally:
        SB.kill(proc)
        SB.unroute("client", "10.90.0.5/32")
        SB.remove_node_address("node2", "10.89.0.22")
        SB.remove_node_address("node2", "fd00:89::22")


# ------------------------------------------------------------ error kinds

def test_refused():
    for fam in (4, 6):
        t0 = time.monotonic()
        r = SB.probe("pod-c", "tcp", SB.pod_ip("a", fam), 9999)
        assert r.error == "refused" and time.monotonic() - t0 < 0.5, r
        r = SB.probe("pod-c", "udp", SB.pod_ip("a", fam), 9999, connected=True)
        assert r.error == "refused", r
        r = SB.probe("pod-c", "udp", SB.pod_ip("a", fam), 9999)
        assert r.error == "refused", r
        r = SB.probe("pod-c", "http", SB.pod_ip("a", fam), 9999, count=2).expect_error("refused")
        assert r.returncode == 1


def test_timeout_is_exact():
    SB.route("client", "10.99.0.0/24", via_node="node1")
    SB.route("client", "fd00:99::/64", via_node="node1")
    SB.blackhole("node1", "10.99.0.0/24")
    SB.blackhole("node1", "fd00:99::/64")
    try:
        for addr in ("10.99.0.1", "fd00:99::1"):
            for proto in ("tcp", "udp", "http"):
                t0 = time.monotonic()
                r = SB.probe("client", proto, addr, 80, timeout_ms=300)
                took = time.monotonic() - t0
                assert r.error == "timeout", r
                assert 0.29 <= r.first.ms / 1000 < 0.4 and took < 0.8, (r, took)
        r = SB.probe("client", "tcp", "10.99.0.1", 80, count=3, timeout_ms=100)
        assert r.errors == ["timeout"] * 3, r
    finally:
        SB.unroute("client", "10.99.0.0/24")
        SB.unroute("client", "fd00:99::/64")
        SB.unroute("node1", "10.99.0.0/24")
        SB.unroute("node1", "fd00:99::/64")


def test_probe_cli():
    def run(ns, *args):
        return SB.exec(ns, [S.PROBE] + list(args))
    p = run("pod-a", "tcp", SB.pod_ip("c"), "8080")
    name, ip, port = p.stdout.split()
    assert p.returncode == 0 and name == "c" and ip == SB.pod_ip("a") and port.isdigit(), p
    p = run("pod-a", "--count", "2", "tcp", SB.pod_ip("c"), "9")
    assert p.returncode == 1 and p.stdout == "ERROR refused\nERROR refused\n", p
    p = run("pod-a", "--expect-fail", "udp", "--connected", SB.pod_ip("c"), "9")
    assert p.returncode == 0 and p.stdout == "ERROR refused\n", p
    p = run("pod-a", "--expect-fail", "tcp", SB.pod_ip("c"), "8080")
    assert p.returncode == 1, p
    p = run("node1", "--bind", "10.89.0.11:40123", "tcp", SB.pod_ip("c"), "8080")
    assert p.returncode == 0 and p.stdout.split()[1:] == ["10.89.0.11", "40123"], p
    p = run("node1", "--bind", "[fd00:89::11]:40124", "udp", SB.pod_ip("c", 6), "8081")
    assert p.returncode == 0 and p.stdout.split()[1:] == ["fd00:89::11", "40124"], p
    p = run("pod-a", "--hold", "0.5", "--interval", "50", "udp", SB.pod_ip("d"), "8081")
    assert p.returncode == 0 and p.stdout == "sent 10 ok 10 failed 0 first_error none\n", p
    p = run("pod-a", "tcp", "not-an-address", "80")
    assert p.returncode == 2, p


def test_sctp():
    r = SB.probe("pod-a", "sctp", SB.pod_ip("b"), 9000)
    if r.ok:
        assert r.name == "b" and r.client_ip == SB.pod_ip("a"), r
        return
    # no SCTP in this kernel: echod warned and went on serving the other ports
    assert "sctp over IPv4 not available" in SB.log_of(SB.pods["b"].server)
    assert r.error.startswith("error:"), r
    SB.probe("pod-a", "tcp", SB.pod_ip("b"), 8080).expect_ok()
    skip("the kernel has no SCTP (echod warns and serves TCP/UDP)")


# -------------------------------------------------------------- hold mode

def test_hold():
    for proto, port in [("tcp", 8080), ("udp", 8081), ("http", 8080)]:
        r = SB.probe("pod-b", proto, SB.pod_ip("c", 6), port, hold=1, interval_ms=100).expect_ok()
        assert r.sent == 10 and r.answered == 10 and r.first_error is None, r
        assert r.names_seen == {"c": 10}, r


def test_hold_sees_a_broken_connection():
    out = {}

    def hold():
        out["r"] = SB.probe("pod-b", "tcp", SB.pod_ip("d"), 8080, hold=2, interval_ms=50)

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.5)
    SB.restart_server("d")          # the connection dies with the old server
    PIDS.append(SB.pods["d"].server_pid)
    t.join(10)
    r = out["r"]
    assert not r.ok and r.failed >= 1 and r.first_error in ("error:closed", "reset"), r
    assert r.returncode == 1
    SB.probe("pod-b", "tcp", SB.pod_ip("d"), 8080).expect_ok()


def test_restart_server_with_other_ports():
    SB.restart_server("d", ports={"tcp": [9090], "udp": [9091]})
    PIDS.append(SB.pods["d"].server_pid)
    try:
        assert SB.probe("pod-a", "tcp", SB.pod_ip("d"), 9090).expect_ok().name == "d"
        assert SB.probe("pod-a", "udp", SB.pod_ip("d", 6), 9091).expect_ok().name == "d"
        assert SB.probe("pod-a", "tcp", SB.pod_ip("d"), 8080).error == "refused"
    finally:
        SB.restart_server("d", ports=S.DEFAULT_PORTS)
        PIDS.append(SB.pods["d"].server_pid)
    SB.probe("pod-a", "tcp", SB.pod_ip("d"), 8080).expect_ok()


def test_add_and_remove_pod():
    e = SB.add_pod("e", "node2", ports={"tcp": [8080]})
    assert e.index == 12 and e.ip4 == "10.244.2.12", e
    pid = e.server_pid
    assert SB.probe("pod-a", "tcp", e.ip6, 8080).expect_ok().name == "e"
    SB.remove_pod("e")
    assert f"{SB.prefix}-pod-e" not in S.netns_list()
    assert SB.ip("node2", "link", "show", "dev", e.veth, check=False).returncode != 0
    assert not S._alive(pid)
    r = SB.probe("pod-a", "tcp", e.ip4, 8080, timeout_ms=300)
    assert not r.ok, r
    f = SB.add_pod("f", "node2", ports={})       # no server; the index is not reused
    assert f.index == 13 and f.server is None
    SB.remove_pod("f")
    SB.remove_pod("f")                           # removing twice is fine


def test_failed_pod_leaves_nothing():
    try:
        SB.add_pod("bad", "node1", ports={"tcp": [8080, 8080]})   # echod cannot bind twice
    except S.SandboxError as e:
        assert "exited with status" in str(e), e
    else:
        raise AssertionError("add_pod should have failed")
    assert "bad" not in SB.pods and f"{SB.prefix}-pod-bad" not in S.netns_list()


def test_many_connections():
    n = 2000
    script = (
        "import socket,selectors,sys\n"
        "n=int(sys.argv[2]); sel=selectors.DefaultSelector(); socks=[]\n"
        "for i in range(n):\n"
        "  s=socket.create_connection((sys.argv[1],8080),timeout=5); socks.append(s)\n"
        "for s in socks: s.sendall(b'x\\n')\n"
        "ok=0\n"
        "for s in socks:\n"
        "  d=b''\n"
        "  while not d.endswith(b'\\n'):\n"
        "    x=s.recv(100)\n"
        "    if not x: break\n"
        "    d+=x\n"
        "  ok+=d.startswith(b'a ')\n"
        "print(ok)\n")
    t0 = time.monotonic()
    p = SB.exec("node2", ["sh", "-c", f"ulimit -n 8192; exec {sys.executable} -c \"$0\" \"$@\"",
                          script, SB.pod_ip("a"), str(n)], timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == str(n), (p.stdout, p.stderr[-2000:])
    print(f"    {n} concurrent connections answered in {time.monotonic() - t0:.2f}s")
    SB.probe("pod-c", "tcp", SB.pod_ip("a"), 8080).expect_ok()


# ------------------------------------------------- processes and namespaces

def test_exec_and_spawn():
    host_ns = os.readlink("/proc/self/ns/net")
    inner = SB.exec("node1", ["readlink", "/proc/self/ns/net"], check=True).stdout.strip()
    assert inner != host_ns
    # nsenter keeps the host's /sys (cgroup v2, bpffs): the host's interfaces show there
    inner_sys = set(SB.exec("node1", ["ls", "/sys/class/net"], check=True).stdout.split())
    assert inner_sys == set(os.listdir("/sys/class/net")), inner_sys
    p = SB.spawn("client", ["sleep", "60"])
    assert any(i["pid"] == p.pid for i in SB.status()["procs"])
    assert S._pids_in_netns([SB.ns("client")]).get(p.pid) == SB.ns("client")
    SB.kill(p)
    assert p.returncode is not None


def test_partial_setup_is_torn_down():
    sb = S.Sandbox(reaper=False)
    PREFIXES.append(sb.prefix)
    real = S._ip_batch
    calls = []

    def failing(ns, lines, force=False):
        calls.append(ns)
        if len(calls) == 4:
            raise S.SandboxError("injected failure")
        return real(ns, lines, force)

    S._ip_batch = failing
    try:
        sb.up()
    except S.SandboxError as e:
        assert "injected" in str(e)
    else:
        raise AssertionError("up() should have failed")
    finally:
        S._ip_batch = real
    assert not _ns_with(sb.prefix) and S.load_state(sb.prefix) is None
    sb.down()                                  # again: nothing to do, no error


def test_teardown_leaves_nothing():
    sb = S.Sandbox(nodes=1, ipv6=False)
    PREFIXES.append(sb.prefix)
    with sb:
        sb.add_pod("x", "node1")
        assert sb.pods["x"].ip6 is None
        r = sb.probe("node1", "tcp", sb.pod_ip("x"), 8080).expect_ok()
        assert r.name == "x"
        pids = [sb.pods["x"].server_pid, sb.spawn("api", ["sleep", "60"]).pid]
        reaper = sb._reaper
        assert reaper is not None and reaper.poll() is None
        assert "inet6 fd00" not in sb.ip("node1", "addr").stdout
    assert not _ns_with(sb.prefix)
    assert not any(S._alive(p) for p in pids)
    assert reaper.poll() is not None
    assert S.load_state(sb.prefix) is None and not os.path.exists(sb.run_dir)
    sb.down()                                  # idempotent


CHILD = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started ignoring it
sys.path.insert(0, {here!r})
import sandbox as S
sb = S.Sandbox(reaper={reaper}).up()
sb.add_pod("p", "node1")
print(sb.prefix, sb.pods["p"].server_pid, flush=True)
if {suicide}:
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(60)
"""


CHILDREN = []
CHILD_PREFIXES = []


def _child(reaper, suicide):
    """A process that makes a sandbox with one pod; returns (Popen, prefix, echod pid)."""
    code = CHILD.format(here=HERE, reaper=reaper, suicide=suicide)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    CHILDREN.append(p)
    line = p.stdout.readline().split()
    assert len(line) == 2, p.stderr.read() if p.poll() is not None else line
    PREFIXES.append(line[0])
    CHILD_PREFIXES.append(line[0])
    PIDS.append(int(line[1]))
    return p, line[0], int(line[1])


def _reap_children():
    """Whatever a failed test left: the child processes, then their sandboxes."""
    for p in CHILDREN:
        if p.poll() is None:
            p.kill()
        p.wait()
        for f in (p.stdout, p.stderr):
            f.close()
    CHILDREN.clear()
    for prefix in CHILD_PREFIXES:
        S.teardown_prefix(prefix)


def _wait_gone(prefix, timeout=5):
    deadline = time.monotonic() + timeout
    while _ns_with(prefix) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _ns_with(prefix)


def test_cleanup_after_killed_process():
    try:
        p, prefix, echod = _child(reaper=False, suicide=True)
        p.wait(5)
        assert p.returncode == -signal.SIGKILL
        assert len(_ns_with(prefix)) == 6 and S._alive(echod)     # left behind
        st = _run_cli("status", prefix, "--json")
        info = json.loads(st.stdout)[0]
        assert info["owner_alive"] is False and info["pods"] == ["p"] and info["processes"] >= 1, info
        # "cleanup" takes every kpx- sandbox on the machine; other runs may own some,
        # so this one is limited to the prefix of the sandbox that was left behind
        c = _run_cli("cleanup", prefix)
        assert c.returncode == 0 and f"removed {prefix}" in c.stdout, c
        assert not _ns_with(prefix) and not S._alive(echod)
        assert S.load_state(prefix) is None
        c = _run_cli("cleanup", prefix)
        assert c.returncode == 0 and c.stdout == "", c
    finally:
        _reap_children()


def test_watcher_after_killed_process():
    try:
        p, prefix, echod = _child(reaper=True, suicide=True)
        p.wait(5)
        assert _wait_gone(prefix), "the watcher did not tear the sandbox down"
        # The namespaces go first; the processes and the state file follow.
        deadline = time.monotonic() + 5
        while (S._alive(echod) or S.load_state(prefix) is not None) and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        assert not S._alive(echod) and S.load_state(prefix) is None
    finally:
        _reap_children()


def test_sigterm_and_ctrl_c():
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            p, prefix, echod = _child(reaper=False, suicide=False)
            p.send_signal(sig)
            p.wait(10)
            assert not _ns_with(prefix), (sig, p.stderr.read())
            assert not S._alive(echod) and S.load_state(prefix) is None
    finally:
        _reap_children()


def test_cli_up_exec_down():
    up = _run_cli("up", "--nodes", "1", "--no-ipv6", "--pod", "x@node1:tcp=8080+8082,udp=53")
    assert up.returncode == 0, up.stderr
    prefix = up.stdout.split()[1]
    PREFIXES.append(prefix)
    try:
        assert len(_ns_with(prefix)) == 5
        ex = _run_cli("exec", prefix, "node1", "--", S.PROBE, "tcp", "10.244.1.10", "8082")
        assert ex.returncode == 0 and ex.stdout.startswith("x 10.89.0.11 "), ex
        ex = _run_cli("exec", prefix, "pod-x", "--", S.PROBE, "udp", "127.0.0.1", "53")
        assert ex.returncode == 0 and ex.stdout.startswith("x 127.0.0.1 "), ex
        att = S.Sandbox.attach(prefix)
        assert att.pod_ip("x") == "10.244.1.10"
        assert att.probe("client", "tcp", "10.89.0.11", 22, timeout_ms=300).error == "refused"
        st = _run_cli("status", prefix)
        assert prefix in st.stdout and "pods x" in st.stdout, st
    finally:
        down = _run_cli("down", prefix)
    assert down.returncode == 0 and not _ns_with(prefix), down
    assert _run_cli("down", prefix).returncode == 0


def test_zz_everything_gone():
    SB.down()
    for prefix in PREFIXES:
        assert not _ns_with(prefix), prefix
        assert S.load_state(prefix) is None, prefix
        assert not os.path.exists(os.path.join(S.STATE_DIR, prefix)), prefix
    alive = [p for p in PIDS if p and S._alive(p)]
    assert not alive, alive
