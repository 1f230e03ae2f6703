"""End-to-end: the agent's API client against a misbehaving API server.

One sandbox cluster with the API emulator (TLS, bearer token) and an agent
on node1.  The tests check that the agent authenticates and verifies the
server as configured by its kubeconfig (and refuses a server it cannot
verify, or one that refuses it, without touching the kernel's rules); that
it rides out each fault the emulator can inject into its list and watch
requests (dropped watches, expired versions, garbage, truncated and huge
lines, 500s with Retry-After, slow answers) with the Services it serves
intact, later ones served within seconds and ones deleted meanwhile
removed; that it backs off from a server that keeps failing or keeps
ending its watches at once; that one malformed Service is rejected alone;
and that a cluster too big for one list page is listed completely, even
when the page token expires.  Checks send real packets from a pod (or,
for an agent on node2, from that node).

Services of this module use ClusterIPs in 10.96.3.0/24 (and 10.96.4.0 up
for the big cluster).
"""

import base64
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster  # noqa: E402
import sandbox  # noqa: E402
from cluster import Cluster, endpoint_slice, service  # noqa: E402

MODE = os.environ.get("KPROXY_MODE", "nftables")
C = None
CLIENT = "pod-ac-client"
STEADY_IP = "10.96.3.1"
API_URL = f"https://{sandbox.API_ADDR}:{cluster.API_PORT}"
# How long a fault round holds the agent's next Service and EndpointSlice
# requests, so that a change made meanwhile can only reach it through a
# resumed watch or a relist.
HOLD_S = 2
_next_host = [40]


def setup_module():
    global C
    C = Cluster(mode=MODE).up()
    C.add_pod("ac-web-1", "node1", ports={"tcp": [8080], "udp": [8081]})
    C.add_pod("ac-web-2", "node2", ports={"tcp": [8080], "udp": [8081]})
    C.add_pod("ac-client", "node1", ports={})
    C.start_agent("node1")
    C.create(service("steady", web_ports(), cluster_ip=STEADY_IP),
             endpoint_slice("steady", web_endpoints(), slice_ports()))
    C.sb.wait_for(CLIENT, "tcp", STEADY_IP, 80)


def teardown_module():
    if C:
        C.down()


# ----------------------------------------------------------------- helpers

def eventually(fn, timeout=5.0, every=0.1, what="condition"):
    """Calls fn until it returns a true value; returns it, or fails with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {v!r})")
        time.sleep(every)


def web_ports():
    return [("http", "TCP", 80, 8080), ("dns", "UDP", 53, 8081)]


def slice_ports():
    return [("http", "TCP", 8080), ("dns", "UDP", 8081)]


def web_endpoints():
    return [C.pod_endpoint("ac-web-1"), C.pod_endpoint("ac-web-2")]


def next_ip():
    """A fresh ClusterIP in 10.96.3.0/24 for one Service of one test."""
    host = _next_host[0]
    _next_host[0] += 1
    assert host < 255, "out of test ClusterIPs"
    return f"10.96.3.{host}"


def create_served(name, ip):
    """A Service with endpoints on both nodes; returns once it answers."""
    C.create(service(name, web_ports(), cluster_ip=ip),
             endpoint_slice(name, web_endpoints(), slice_ports()))
    C.sb.wait_for(CLIENT, "tcp", ip, 80)


def answers(ip, port=80, proto="tcp"):
    return C.sb.probe(CLIENT, proto, ip, port, timeout_ms=500).ok


def wait_answers(ip, timeout=10.0, proto="tcp", port=80):
    return C.sb.wait_for(CLIENT, proto, ip, port, timeout=timeout)


def wait_silent(ip, timeout=10.0, proto="tcp", port=80):
    """Waits until nothing answers on ip:port any more."""
    return C.sb.wait_for(CLIENT, proto, ip, port, ok=False, timeout=timeout, timeout_ms=300)


def emulator(method, path, body=None):
    """Calls the emulator's control API from inside the api namespace."""
    pki = os.path.join(C.dir, "pki")
    argv = ["curl", "-sS", "--fail-with-body", "--max-time", "30",
            "--cacert", os.path.join(pki, "ca.crt"),
            "-H", f"Authorization: Bearer {cluster.TOKEN}", "-X", method, API_URL + path]
    if body is not None:
        argv[1:1] = ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    r = C.sb.exec("api", argv, input=json.dumps(body) if body is not None else None, timeout=40)
    if r.returncode != 0:
        raise RuntimeError(f"emulator {method} {path}: {r.stderr.strip()} {r.stdout.strip()}")
    return json.loads(r.stdout)


def fault(**spec):
    return emulator("POST", "/emulator/faults", spec)


def watches():
    return emulator("GET", "/emulator/watches")


def wait_watching(agents=1, timeout=15.0):
    """Waits until the agents hold exactly one watch per resource each."""
    want = {"services": agents, "endpointslices": agents, "nodes": agents}

    def ok():
        w = watches()
        return w if all(w.get(k, 0) == v for k, v in want.items()) else None
    eventually(ok, timeout=timeout, every=0.1, what=f"watches {want}")


def agent_alive(node="node1"):
    proc = C.agents.get(node)
    return proc is not None and proc.poll() is None


def log_since(mark, node="node1"):
    return C.agent_log(node)[mark:]


def log_mark(node="node1"):
    return len(C.agent_log(node))


def log_times(log, pattern):
    """Seconds since midnight of each klog line of log that matches pattern."""
    out = []
    for line in log.splitlines():
        m = re.match(r"^[IWEF]\d{4} (\d\d):(\d\d):(\d\d\.\d+) ", line)
        if m and re.search(pattern, line):
            out.append(int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)))
    return out


def assert_waited(log, pattern, n, at_least):
    """n lines match pattern, each at least at_least seconds after the one before."""
    t = log_times(log, pattern)
    assert len(t) == n, f"{len(t)} lines /{pattern}/, not {n}:\n{log}"
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert all(g >= at_least for g in gaps), f"retried after {gaps}s, before Retry-After:\n{log}"


def rss_kb(node="node1"):
    """Resident memory of the agent on node, from /proc (the child of nsenter)."""
    pid = C.agents[node].pid
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
    except OSError:
        kids = []
    for p in kids + [str(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                st = f.read()
        except OSError:
            continue
        if "kproxy" in st.split("\n", 1)[0]:
            return int(re.search(r"VmRSS:\s+(\d+)", st).group(1))
    return None


def ruleset(node="node1"):
    """The node's nftables rules without counters or other state."""
    return C.sb.exec(node, ["nft", "-s", "list", "ruleset"], check=True).stdout


def write_kubeconfig(name, ca, token):
    path = os.path.join(C.dir, name)
    subprocess.run(["sh", cluster.KUBECONFIG_SH, path, API_URL, ca, token], check=True)
    return path


def start_refused_agent(kubeconfig):
    """Replaces node1's agent by one with another kubeconfig; returns the old rules."""
    before = ruleset()
    C.stop_agent("node1")
    C.start_agent("node1", extra=[f"--kubeconfig={kubeconfig}"], wait=False)
    return before


def restore_agent():
    """Runs node1's usual agent afresh (new back-off state, new log)."""
    C.stop_agent("node1")
    C.start_agent("node1")
    wait_watching()


# ------------------------------------------------------------ TLS and auth

def test_tls_with_verified_ca_and_bearer_token():
    with open(C.kubeconfig) as f:
        kc = f.read()
    # The fixture's kubeconfig: a CA to verify the server, a bearer token,
    # and no way around verification.
    assert "certificate-authority:" in kc and f"token: {cluster.TOKEN}" in kc, kc
    assert "insecure-skip-tls-verify" not in kc, kc
    assert API_URL.startswith("https://")
    wait_answers(STEADY_IP)
    names, r = C.names(CLIENT, "tcp", STEADY_IP, 80, count=20)
    assert names == {"ac-web-1", "ac-web-2"}, r
    log = C.agent_log("node1")
    assert not re.search(r"certificate|SSL|401", log), log
    wait_watching()


def test_wrong_ca_is_refused_and_rules_stay():
    pki = os.path.join(C.dir, "pki")
    bad = write_kubeconfig("kubeconfig-other-ca", os.path.join(pki, "other-ca.crt"), cluster.TOKEN)
    before = start_refused_agent(bad)
    try:
        # Retries (at least two attempts), each failing on verification.
        eventually(lambda: len(re.findall(r"list failed", C.agent_log("node1"))) >= 2,
                   timeout=10, what="two failed lists")
        log = C.agent_log("node1")
        assert re.search(r"list failed: .*(certificate|SSL|TLS)", log, re.I), log
        assert "sync done" not in log, log
        # The rules of the agent before it are untouched and still serve.
        assert ruleset() == before
        assert C.sb.probe(CLIENT, "tcp", STEADY_IP, 80).ok
    finally:
        restore_agent()


def test_wrong_token_gets_401_and_programs_nothing():
    pki = os.path.join(C.dir, "pki")
    bad = write_kubeconfig("kubeconfig-bad-token", os.path.join(pki, "ca.crt"), "not-the-token")
    before = start_refused_agent(bad)
    try:
        eventually(lambda: len(re.findall(r"list failed: HTTP 401", C.agent_log("node1"))) >= 2,
                   timeout=10, what="two lists refused with 401")
        log = C.agent_log("node1")
        assert "sync done" not in log, log
        assert ruleset() == before
        assert C.sb.probe(CLIENT, "tcp", STEADY_IP, 80).ok
    finally:
        restore_agent()


def test_kubeconfig_with_inline_ca_and_relative_token_file():
    # certificate-authority-data instead of a file, and a tokenFile named
    # relative to the kubeconfig's own directory.
    d = os.path.join(C.dir, "kc-inline")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(C.dir, "pki", "ca.crt"), "rb") as f:
        ca_data = base64.b64encode(f.read()).decode()
    with open(os.path.join(d, "token"), "w") as f:
        f.write(cluster.TOKEN + "\n")
    kc = os.path.join(d, "kubeconfig")
    with open(kc, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: {API_URL}
    certificate-authority-data: {ca_data}
users:
- name: proxy
  user:
    tokenFile: token
contexts:
- name: proxy@sandbox
  context: {{cluster: sandbox, user: proxy}}
current-context: proxy@sandbox
""")
    C.stop_agent("node1")
    try:
        C.start_agent("node1", extra=[f"--kubeconfig={kc}"])
        ip = next_ip()
        create_served("inline-ca", ip)
        assert answers(STEADY_IP)
    finally:
        restore_agent()


def test_insecure_skip_tls_verify_connects_without_a_ca():
    kc = os.path.join(C.dir, "kubeconfig-insecure")
    subprocess.run(["sh", cluster.KUBECONFIG_SH, kc, API_URL, "-", cluster.TOKEN, "--insecure"],
                   check=True)
    C.stop_agent("node1")
    try:
        C.start_agent("node1", extra=[f"--kubeconfig={kc}"])
        create_served("insecure", next_ip())
    finally:
        restore_agent()


# ---------------------------------------------------------------- faults

HOLD_PATHS = ("/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices")


def fault_round(tag, inject, hold=True, expect_relist=None, expect_log=(), expire=False,
                during=None, recover_s=HOLD_S + 8):
    """One fault against a served cluster.

    Two victims are served: one whose Service will be deleted, one whose
    EndpointSlice will be.  The agent's next request for Services and for
    EndpointSlices is held for HOLD_S seconds (hold); inject() breaks
    something; the victims lose their objects while the watches are broken
    (and, with expire, the history that would replay those deletions is
    forgotten).  Then: the steady Service still answers, a Service created
    after the fault answers, the deleted Service stops answering and the
    Service without its slice refuses connections, and the agent runs and
    watches each resource once.  expect_relist True/False: whether the
    Service reflector must have listed again; expect_log: patterns the agent
    must have logged meanwhile; recover_s: how long the agent may take to
    see the changes.  Returns the agent's log of the round.
    """
    victim_ip, emptied_ip, new_ip = next_ip(), next_ip(), next_ip()
    create_served(f"{tag}-old", victim_ip)
    create_served(f"{tag}-eps", emptied_ip)
    wait_watching()
    mark = log_mark()
    if hold:
        for path in HOLD_PATHS:
            fault(action="delay", seconds=HOLD_S, count=1, path=path, method="GET")
    try:
        inject()
        C.delete("service", f"{tag}-old")
        C.delete("endpointslice", f"{tag}-eps-ipv4")
        if expire:
            fault(action="expire")
        if during:
            during()
        # (a) the Service served before the fault is served throughout.
        assert answers(STEADY_IP), f"{STEADY_IP} stopped answering after {tag}"
        # (b) one created after the fault answers within seconds.
        C.create(service(f"{tag}-new", web_ports(), cluster_ip=new_ip),
                 endpoint_slice(f"{tag}-new", web_endpoints(), slice_ports()))
        wait_answers(new_ip, timeout=recover_s)
        # (c) what was deleted while the watches were broken is gone.
        wait_silent(victim_ip, timeout=recover_s)
        wait_silent(victim_ip, proto="udp", port=53, timeout=3)
        C.sb.wait_for(CLIENT, "tcp", emptied_ip, 80, ok=False, timeout=recover_s,
                      until=lambda r: r.error == "refused")
        # (d) the agent runs, watches again, and still serves everything.
        assert agent_alive(), C.agent_log("node1")
        wait_watching()
        assert answers(STEADY_IP) and answers(new_ip)
    finally:
        fault(action="reset")
    log = log_since(mark)
    relisted = "Service: listed" in log
    if expect_relist is not None:
        assert relisted == expect_relist, f"relisted={relisted} after {tag}:\n{log}"
    for pat in expect_log:
        assert re.search(pat, log), f"after {tag}, no /{pat}/ in the log:\n{log}"
    return log


def test_fault_drop_watches_resumes_from_last_version():
    fault_round("drop", lambda: fault(action="drop-watches"), expect_relist=False,
                expect_log=[r"Service: watch ended"])


def test_fault_expire_relists_on_410_and_deletes_vanished_objects():
    # The watch is cut and history forgotten: the resumed watch gets 410 and
    # the agent lists again; the victim, deleted meanwhile, appears in no
    # event at all and must be found missing by the list.
    fault_round("expire", lambda: fault(action="drop-watches"), expire=True,
                expect_relist=True, expect_log=[r"Service: watch version expired",
                                                r"EndpointSlice: watch version expired"])


def test_fault_garbage_relists():
    def inject():
        r = fault(action="garbage")
        assert r.get("watches", 0) >= 3, r
    fault_round("garbage", inject, expect_relist=True,
                expect_log=[r"Service: watch stream sent something that is not an event"])


def test_fault_garbage_json_that_is_not_an_event_relists():
    fault_round("notevent", lambda: fault(action="garbage", text='{"type":"ADDED"}'),
                expect_relist=True, expect_log=[r"Service: watch event without type or object"])


def test_fault_error_event_resumes_and_410_event_relists():
    # An ERROR event other than 410 ends the watch, which resumes from the
    # last version; a 410 one makes the agent list again.
    def status(code):
        return json.dumps({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"injected {code}", "code": code}})
    fault_round("errev", lambda: fault(action="garbage", text=status(500)), expect_relist=False,
                expect_log=[r"Service: watch error 500: injected 500"])
    fault_round("goneev", lambda: fault(action="garbage", text=status(410)), expect_relist=True,
                expect_log=[r"Service: watch version expired"])


def test_fault_truncated_event_resumes():
    fault_round("trunc", lambda: fault(action="truncate"), expect_relist=False,
                expect_log=[r"Service: watch ended"])


def test_fault_huge_line_above_limit_relists_with_bounded_memory():
    fault_round("huge", lambda: fault(action="huge-line", bytes=20 << 20), expect_relist=True,
                expect_log=[r"Service: watch line longer than"])
    # The 16 MiB line buffer was released; memory is not left at the peak.
    kb = rss_kb()
    assert kb is not None and kb < 64 * 1024, f"agent RSS {kb} kB after a 20 MB line"


def test_fault_huge_line_below_limit_is_accepted():
    mark = log_mark()
    starts = watches()
    fault_round("big", lambda: fault(action="huge-line", bytes=1 << 20), hold=False,
                expect_relist=False)
    log = log_since(mark)
    assert "longer than" not in log and "watch ended" not in log, log
    assert starts == watches()


def test_fault_500_with_retry_after_on_lists():
    # Garbage makes every reflector list again; the first lists get 500 with
    # Retry-After, and the agent must not come back sooner than asked.
    def inject():
        for path in ("/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"):
            fault(action="error", status=500, count=3, path=path, method="GET", retryAfter=1)
        fault(action="garbage")
    log = fault_round("err-list", inject, hold=False, expect_relist=True, recover_s=20,
                      expect_log=[r"EndpointSlice: list failed: HTTP 500"])
    assert_waited(log, r"Service: list failed: HTTP 500", 3, 0.95)


def test_fault_500_with_retry_after_on_watches():
    def inject():
        for path in ("/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"):
            fault(action="error", status=500, count=3, path=path, method="GET", retryAfter=1)
        fault(action="drop-watches")
    log = fault_round("err-watch", inject, hold=False, expect_relist=False, recover_s=20)
    assert_waited(log, r"Service: watch failed: HTTP 500", 3, 0.95)


def test_fault_slow_server_does_not_block_other_resources():
    # Services answers are held for seconds; meanwhile an EndpointSlice change
    # for a Service the agent already has must take effect at once: the
    # agent never waits on one request.  A fresh agent, so that back-off
    # left from earlier rounds does not hold up the slice watch either.
    restore_agent()
    ip = next_ip()
    C.create(service("held-slice", web_ports(), cluster_ip=ip))
    C.sb.wait_for(CLIENT, "tcp", ip, 80, ok=False, until=lambda r: r.error == "refused")
    held = 6

    def inject():
        fault(action="delay", seconds=held, count=1, path="/api/v1/services", method="GET")
        fault(action="drop-watches")

    def during():
        t0 = time.monotonic()
        C.create(endpoint_slice("held-slice", web_endpoints(), slice_ports()))
        wait_answers(ip, timeout=held)
        # The Service watch is still held when the slice change is in effect.
        assert watches().get("services", 0) == 0, "Service watch was not held"
        assert time.monotonic() - t0 < held
    fault_round("slow", inject, hold=False, expect_relist=False, during=during)


def test_retry_after_zero_does_not_defeat_back_off():
    # A server (or a proxy in front of it) that answers 500 with
    # "Retry-After: 0" again and again must still see the agent back off
    # rather than retry at once in a loop.
    mark = log_mark()
    fault(action="error", status=500, count=100, path="/api/v1/services", method="GET",
          retryAfter=0)
    try:
        fault(action="drop-watches")
        time.sleep(3)       # the rate of retries over a fixed window is what is measured
        left = sum(f["count"] for f in emulator("GET", "/emulator/faults"))
    finally:
        fault(action="reset")
    tries = 100 - left
    # Back-off from 0.5 s doubling gives 3 tries in 3 s; allow for jitter.
    assert tries <= 6, (f"{tries} Service requests in 3 s against 500 + Retry-After: 0:\n"
                        + "\n".join(log_since(mark).splitlines()[:12]))
    assert agent_alive()
    wait_watching(timeout=40)


def test_back_off_starts_over_after_a_healthy_watch():
    # Watches that worked (events arrived) and were then cut are not a run
    # of failures: each reconnection must come quickly, not after a delay
    # that has doubled with every cut since the agent started.
    restore_agent()
    for k in range(4):
        fault(action="drop-watches")
        # A change after the cut proves the watch is back and carried events.
        ip = next_ip()
        C.create(service(f"cut-{k}", web_ports(), cluster_ip=ip),
                 endpoint_slice(f"cut-{k}", web_endpoints(), slice_ports()))
        wait_answers(ip, timeout=15)
    fault(action="drop-watches")
    t0 = time.monotonic()
    ip = next_ip()
    C.create(service("cut-last", web_ports(), cluster_ip=ip),
             endpoint_slice("cut-last", web_endpoints(), slice_ports()))
    C.sb.wait_for(CLIENT, "tcp", ip, 80, timeout=20)
    took = time.monotonic() - t0
    assert took < 4, f"after the fifth cut of a healthy watch, a change took {took:.1f}s"
    wait_watching()


FAKE_SERVER = r"""
import http.server, json, socketserver, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        path, _, query = self.path.partition("?")
        watch = "watch=1" in query or "watch=true" in query
        print(("WATCH " if watch else "GET ") + path, flush=True)
        if watch:
            body = b""      # the stream ends at once, cleanly
        else:
            body = json.dumps({"kind": "List", "apiVersion": "v1",
                               "metadata": {"resourceVersion": "10"}, "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        # No reverse look-up of the address (it would stall in the sandbox).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""
FAKE_PORT = 6080


def test_watches_that_end_at_once_are_not_retried_in_a_loop():
    # An API server (or a load balancer in front of it) that ends every watch
    # cleanly as soon as it starts: the agent must not reconnect in a tight
    # loop.  client-go treats a watch shorter than a second with no event as
    # an error and backs off.
    srv = C.sb.spawn("api", [sys.executable, "-c", FAKE_SERVER, sandbox.API_ADDR,
                             str(FAKE_PORT)], log="fake-apiserver")
    try:
        C.sb.wait_listen("node2", sandbox.API_ADDR, FAKE_PORT)
        kc = os.path.join(C.dir, "kubeconfig-fake")
        subprocess.run(["sh", cluster.KUBECONFIG_SH, kc,
                        f"http://{sandbox.API_ADDR}:{FAKE_PORT}", "-", "-"], check=True)
        C.start_agent("node2", extra=[f"--kubeconfig={kc}"])
        t0 = time.monotonic()
        time.sleep(3)       # the rate of reconnections over a fixed window is what is measured
        watches_seen = C.sb.log_of(srv).count("WATCH /api/v1/services")
        elapsed = time.monotonic() - t0
        assert agent_alive("node2")
        assert watches_seen <= 10, (f"{watches_seen} Service watches in {elapsed:.1f}s from a "
                                    "server that ends each at once")
    finally:
        C.stop_agent("node2")
        C.sb.kill(srv)


# ------------------------------------------------------ malformed objects

def test_malformed_service_is_rejected_alone():
    restore_agent()
    bad_name = service("bad-portname", [("BANANA", "TCP", 80, 8080)], cluster_ip=next_ip())
    bad_itp = service("bad-itp", web_ports(), cluster_ip=next_ip(),
                      internalTrafficPolicy="BANANA")
    good_ip = next_ip()
    mark = log_mark()
    for svc in (bad_name, bad_itp):
        C.create(svc, endpoint_slice(svc["metadata"]["name"], web_endpoints(), slice_ports()))
    C.create(service("after-bad", web_ports(), cluster_ip=good_ip),
             endpoint_slice("after-bad", web_endpoints(), slice_ports()))
    wait_answers(good_ip)
    log = log_since(mark)
    lines = [ln for ln in log.splitlines() if "rejected" in ln]
    name_lines = [ln for ln in lines if "default/bad-portname" in ln]
    itp_lines = [ln for ln in lines if "default/bad-itp" in ln]
    assert len(name_lines) == 1 and "spec.ports[0].name" in name_lines[0], log
    assert len(itp_lines) == 1 and "spec.internalTrafficPolicy" in itp_lines[0], log
    for svc in (bad_name, bad_itp):
        ip = svc["spec"]["clusterIP"]
        assert C.sb.probe(CLIENT, "tcp", ip, 80, timeout_ms=300).all_failed
    assert agent_alive()
    assert answers(STEADY_IP)
    # A relist does not log the same rejection again.
    fault(action="garbage")
    wait_watching()
    create_served("after-relist", next_ip())
    assert len([ln for ln in log_since(mark).splitlines()
                if "default/bad-itp" in ln and "rejected" in ln]) == 1


def test_invalid_update_keeps_previous_version():
    ip = next_ip()
    create_served("flip", ip)
    mark = log_mark()
    broken = service("flip", web_ports(), cluster_ip=ip, internalTrafficPolicy="BANANA")
    C.replace(broken)
    eventually(lambda: "default/flip rejected" in log_since(mark), what="rejection logged")
    line = [ln for ln in log_since(mark).splitlines() if "default/flip rejected" in ln][0]
    assert "spec.internalTrafficPolicy" in line and "keeping its previous version" in line, line
    names, r = C.names(CLIENT, "tcp", ip, 80, count=10)
    assert names == {"ac-web-1", "ac-web-2"}, r
    # A valid update after it applies, and so does a deletion.
    C.replace(service("flip", [("http", "TCP", 80, 8080), ("dns", "UDP", 5353, 8081)],
                      cluster_ip=ip))
    wait_answers(ip, proto="udp", port=5353)
    wait_silent(ip, proto="udp", port=53)
    C.delete("service", "flip")
    wait_silent(ip)


# ------------------------------------------------------------ big cluster

BULK = 550          # more than one list page (the agent asks for 500 at a time)

BULK_SCRIPT = r"""
import http.client, json, ssl, sys, threading
host, port, ca, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
n, pods = int(sys.argv[5]), json.loads(sys.argv[6])
ctx = ssl.create_default_context(cafile=ca)
errors = []

def objects(i):
    name = f"bulk-{i:03d}"
    ip = f"10.96.{4 + i // 250}.{i % 250 + 1}"
    addr, node = pods[i % len(pods)]
    yield "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "clusterIPs": [ip],
                 "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]}}
    yield "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name + "-x", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [addr], "nodeName": node, "conditions": {"ready": True}}],
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}

# Each answer waits out a delayed ACK, so several connections work at once.
def worker(k, step):
    conn = None
    for i in range(k, n, step):
        for path, obj in objects(i):
            for attempt in range(3):
                try:
                    if conn is None:
                        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
                    conn.request("POST", path, json.dumps(obj),
                                 {"Authorization": "Bearer " + token,
                                  "Content-Type": "application/json"})
                    r = conn.getresponse()
                    body = r.read()
                    if r.status != 201:
                        errors.append(f"POST {path}: {r.status} {body[:300]!r}")
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn = None
                    if attempt == 2:
                        errors.append(f"POST {path}: {e}")

threads = [threading.Thread(target=worker, args=(k, 16)) for k in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise SystemExit("\n".join(errors[:10]))
print("created", n)
"""


def bulk_ip(i):
    return f"10.96.{4 + i // 250}.{i % 250 + 1}"


def test_big_cluster_is_listed_in_pages():
    pods = [[C.pod_ip("ac-web-1"), "node1"], [C.pod_ip("ac-web-2"), "node2"]]
    r = C.sb.exec("api", [sys.executable, "-c", BULK_SCRIPT, sandbox.API_ADDR,
                          str(cluster.API_PORT), os.path.join(C.dir, "pki", "ca.crt"),
                          cluster.TOKEN, str(BULK), json.dumps(pods)], timeout=90)
    assert r.returncode == 0 and "created" in r.stdout, r.stderr
    # A fresh agent on node2 lists all of it in pages; traffic from node2
    # itself goes through that agent's rules.  Its Service list pages are
    # held, and between the first and the second the history is forgotten:
    # the continue token expires and the agent must list again from the
    # start.
    fault(action="delay", seconds=3, count=2, path="/api/v1/services", method="GET")
    t0 = time.time()
    late_ip = next_ip()
    try:
        C.start_agent("node2", wait=False)

        def first_page_done():
            return any(q["path"] == "/api/v1/services" and q["time"] > t0 and q["code"] == 200
                       and "limit=" in q["query"] and "continue=" not in q["query"]
                       and "watch" not in q["query"]
                       for q in emulator("GET", "/emulator/requests"))
        eventually(first_page_done, timeout=10, what="first page of the Service list")
        # A write, so that the history's start moves past the token's version.
        C.create(service("bulk-late", web_ports(), cluster_ip=late_ip),
                 endpoint_slice("bulk-late", web_endpoints(), slice_ports()))
        fault(action="expire")
        C.wait_synced("node2", timeout=20)
    finally:
        fault(action="reset")
    try:
        log = C.agent_log("node2")
        assert re.search(r"Service: list failed: HTTP 410", log), log
        m = re.search(r"first \S+ sync done: (\d+) services", log)
        assert m and int(m.group(1)) >= BULK, log
        for ip in (bulk_ip(0), bulk_ip(499), bulk_ip(500), bulk_ip(BULK - 1), late_ip):
            r = C.sb.wait_for("node2", "tcp", ip, 80, timeout=5)
            assert r.name in ("ac-web-1", "ac-web-2"), r
        reqs = emulator("GET", "/emulator/requests")
        for path in ("/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"):
            pages = [q for q in reqs if q["path"] == path and "continue=" in q["query"]
                     and "watch" not in q["query"] and q["code"] == 200]
            assert pages, f"no second page was read on {path}"
        # node1's agent took the same objects from its watch.
        assert answers(bulk_ip(BULK - 1)) and answers(late_ip) and answers(STEADY_IP)
        assert agent_alive("node1") and agent_alive("node2")
    finally:
        C.stop_agent("node2")
