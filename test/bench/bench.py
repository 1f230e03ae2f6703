#!/usr/bin/env python3
"""`make bench`: kproxy against kube-proxy's rulesets and against the wire, in
one run on one machine.

Everything happens inside network namespaces made here: a sandbox cluster
(test/lib/sandbox.py) with three nodes, the API server emulator, a client pod
and ENDPOINTS echod pods per node; the host's own namespace, its nftables and
its routes are never touched.  Rulesets are loaded into throw-away namespaces
(unshare --net) or into a sandbox node.  Teardown runs on every exit,
including Ctrl-C and SIGTERM.

For each N (Services, each with ENDPOINTS endpoints, all in the emulator):

 1. full sync: the agent starts with the N Services present; the time until
    the kernel holds every backend, read from the kernel (nftwatch polls
    one element every millisecond, then a dump of the map must show all
    N x ENDPOINTS backends; bpfwatch counts the pinned maps in eBPF mode).
    Also the dataplane alone (bench_nft: no API, no decoding), and the API
    side alone (bench_decode: the list pages parsed, decoded and modelled,
    no server, no kernel).
 2. one endpoint change: an EndpointSlice replaced through the API -> the
    backend element appears in (or leaves) the kernel; p50/p99.  The agent
    runs with --min-sync-period=0 throughout, so no rate limit applies.
 3. agent cost: peak RSS and CPU seconds at the end of the full sync, RSS
    at rest, from /proc/<pid>/status and /proc/<pid>/stat.
 4. datapath: new TCP connections per second (4 in flight) and request
    latency (one at a time) from a pod to a ClusterIP whose endpoints are
    ENDPOINTS pods on the same node, against the same client straight to
    the pods' addresses (the limit).
 5. anchors: the same N Services as kube-proxy writes them, loaded with
    `nft -f` (nftables mode) and `iptables-restore` (iptables mode, with
    --noflush as kube-proxy runs it, and without, the same input into an
    empty namespace), and the datapath rows through kube-proxy's iptables
    ruleset with the ClusterIP as the last rule of KUBE-SERVICES.

eBPF mode is measured only when `kproxy --proxy-mode=ebpf` starts and syncs;
otherwise its rows say why they were skipped.

Environment: BUILD (default build), BENCH_SCALE=quick|full, BENCH_RUNS,
BENCH_SERVICES (comma-separated), BENCH_ENDPOINTS, BENCH_CHANGES,
BENCH_ANCHOR_CAP (seconds one ruleset load may take; longer ones are
stopped, and one projected to take longer is not started), BENCH_SKIP
(comma-separated: dataplane, nftables, ebpf, changes, anchors, datapath).

Output: a Markdown table on stdout; in $BUILD/bench: results.json, sync.svg,
summary.md, and logs/ (agent and emulator logs of the last run).  Numbers are
printed, never judged: the run fails only when something could not be
measured at all.
"""

import math
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "lib"))
sys.path.insert(0, HERE)

import anchors  # noqa: E402
import benchapi  # noqa: E402
import report  # noqa: E402
import sandbox  # noqa: E402
from sandbox import Sandbox  # noqa: E402

BUILD = os.path.join(REPO, os.environ.get("BUILD", "build"))
OUT = os.path.join(BUILD, "bench")
KPROXY = os.environ.get("KPROXY_BIN", os.path.join(BUILD, "kproxy"))
NFTWATCH = os.path.join(OUT, "nftwatch")
BPFWATCH = os.path.join(OUT, "bpfwatch")
CONNBENCH = os.path.join(OUT, "connbench")
BENCH_NFT = os.path.join(OUT, "bench_nft")
BENCH_DECODE = os.path.join(OUT, "bench_decode")
APISERVER = os.path.join(REPO, "test", "apiserver", "apiserver.py")
GENCERTS = os.path.join(REPO, "test", "apiserver", "gencerts.sh")
KUBECONFIG_SH = os.path.join(REPO, "test", "apiserver", "kubeconfig.sh")
LB_H = os.path.join(REPO, "include", "kproxy", "lb.h")

TOKEN = "kproxy-bench-token"
API_PORT = 6443
NODE_NFT, NODE_EBPF, NODE_IPT = "node1", "node2", "node3"
CPS_CONCURRENCY = 4

SCALES = {
    "quick": {"services": [1000, 5000], "changes": 100, "dp_seconds": 1.5, "anchor_cap": 60},
    "full": {"services": [1000, 10000, 30000], "changes": 200, "dp_seconds": 3.0,
             "anchor_cap": 600},
}
# A ruleset whose first load takes longer than this is loaded only once.
ONE_RUN_ABOVE = 100.0

T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ------------------------------------------------------------------ config

class Config:
    def __init__(self):
        scale = os.environ.get("BENCH_SCALE", "full") or "full"
        if scale not in SCALES:
            raise BenchError(f"BENCH_SCALE must be quick or full, not {scale!r}")
        s = SCALES[scale]
        self.scale = scale
        self.services = s["services"]
        if os.environ.get("BENCH_SERVICES"):
            self.services = sorted({int(x) for x in os.environ["BENCH_SERVICES"].split(",")
                                    if x.strip()})
        self.endpoints = int(os.environ.get("BENCH_ENDPOINTS") or 10)
        self.runs = int(os.environ.get("BENCH_RUNS") or 3)
        self.changes = int(os.environ.get("BENCH_CHANGES") or s["changes"])
        self.dp_seconds = float(os.environ.get("BENCH_DP_SECONDS") or s["dp_seconds"])
        self.anchor_cap = float(os.environ.get("BENCH_ANCHOR_CAP") or s["anchor_cap"])
        self.skip = {x.strip() for x in (os.environ.get("BENCH_SKIP") or "").split(",")
                     if x.strip()}
        if not self.services or min(self.services) <= benchapi.TARGETS + 1 or \
                max(self.services) > 60000:
            raise BenchError(f"BENCH_SERVICES must lie in {benchapi.TARGETS + 2}..60000")
        if not 1 <= self.endpoints <= 60:
            raise BenchError("BENCH_ENDPOINTS must lie in 1..60")
        if self.runs < 1 or self.changes < 2:
            raise BenchError("BENCH_RUNS must be at least 1 and BENCH_CHANGES at least 2")


# ------------------------------------------------------------------ helpers

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def run_group(argv, timeout, input=None):
    """Runs argv in a process group of its own; the whole group is killed on a
    time-out or when this process is interrupted.  Returns (rc, stdout,
    stderr); rc is None on a time-out."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=REPO)
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def kv(line):
    """{"a": "1", ...} from "a=1 b=2"."""
    return dict(p.split("=", 1) for p in line.split() if "=" in p)


class Lines:
    """Line reader with a time-out over a spawned process's stdout pipe."""

    def __init__(self, proc):
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def read(self, timeout, alive=None):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer in time")
            r, _, _ = select.select([self.fd], [], [], min(left, 0.1))
            if alive is not None:
                alive()
            if r:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise EOFError("the process ended")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def write(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def proc_stats(pid):
    """Peak RSS and RSS (MiB), CPU seconds (user + system) of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) / 1024.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def backend_key(i, slot):
    """Key of Service i's backend `slot` in kproxy's "backends" map, in hex:
    address . protocol . port (each padded to 4 bytes, port in network
    order) . slot (host order), as nft.c lays keys out."""
    addr = bytes(int(x) for x in benchapi.vip(i).split("."))
    port = benchapi.PORT.to_bytes(2, "big")
    return (addr + bytes([6, 0, 0, 0]) + port + b"\0\0" +
            slot.to_bytes(4, sys.byteorder)).hex()


def map_version():
    try:
        with open(LB_H) as f:
            m = re.search(r"#define\s+KPROXY_MAP_VERSION\s+(\d+)", f.read())
        return int(m.group(1)) if m else None
    except OSError:
        return None


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) // 1024 // 1024
    except OSError:
        pass

    def version(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True,
                                  timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu,
            "memory_gib": mem, "nft": version(["nft", "--version"]),
            "iptables": version(["iptables-restore", "--version"]),
            "kproxy": version([KPROXY, "--version"]),
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def own_leftovers(marks):
    """What this run left behind: namespaces of its sandbox, processes whose
    command line names its sandbox or temporary directory (agents, watchers,
    servers), bpf pins.  Other sandboxes on the machine are not this run's."""
    if not marks:
        return []
    prefix = marks[0]
    out = [f"namespace {n}" for n in sandbox.netns_list() if n.startswith(prefix + "-")]
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m and m in cmd for m in marks):
            out.append(f"process {pid}: {cmd[:120]}")
    out += [f"bpf pins {d}" for d in sandbox.bpf_test_dirs(prefix) if os.path.exists(d)]
    return out


# ------------------------------------------------------------------ preflight

def preflight(cfg):
    if os.geteuid() != 0:
        raise BenchError("the benchmark needs root (network namespaces, nftables)")
    missing = [p for p in (KPROXY, NFTWATCH, CONNBENCH, BENCH_NFT, sandbox.ECHOD, sandbox.PROBE)
               if not os.access(p, os.X_OK)]
    if missing:
        raise BenchError("missing (run `make bench-build`): " + ", ".join(missing))
    for tool in ("nft", "unshare", "nsenter", "ip", "openssl"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} is not installed")
    if not shutil.which("iptables-restore") and "anchors" not in cfg.skip:
        log("installing iptables (for iptables-restore)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                            "iptables"], env=env, capture_output=True, text=True)
        if r.returncode != 0 or not shutil.which("iptables-restore"):
            raise BenchError("iptables-restore is missing and could not be installed:\n"
                             + r.stderr[-2000:])
    for tool in ("iptables-nft-restore",):
        if shutil.which(tool):
            return tool
    return "iptables-restore"


# ------------------------------------------------------------------ results

class Results:
    def __init__(self, cfg):
        self.cfg = cfg
        self.records = []
        self.context = {}        # emulator timings and the like, for the notes

    def add(self, name, impl, n, value, unit, samples=None, note=None):
        rec = {"name": name, "impl": impl, "services": n, "endpoints": self.cfg.endpoints,
               "value": None if value is None else round(value, 6), "unit": unit}
        if samples is not None:
            rec["samples"] = [None if s is None else round(s, 6) for s in samples]
        if note:
            rec["note"] = note
        self.records = [r for r in self.records
                        if not (r["name"] == name and r["impl"] == impl and r["services"] == n)]
        self.records.append(rec)
        shown = "-" if value is None else f"{value:.4g} {unit}"
        log(f"  {name} {impl} N={n}: {shown}" + (f" ({note})" if note else ""))

    def skip(self, names, impl, n, why):
        for name, unit in names:
            self.add(name, impl, n, None, unit, note=why)


# ------------------------------------------------------------------ the bench

class Bench:
    def __init__(self, cfg, res, iptables_restore, marks):
        self.marks = marks
        self.cfg = cfg
        self.res = res
        self.ipt = iptables_restore
        self.sb = None
        self.dir = None
        self.api = None
        self.loaded = 0
        self.real = {}
        self.pods = {}
        self.agent = None
        self.ebpf_reason = None
        self.maps_dir = None
        self.history = {}        # anchor kind -> [(n, seconds or None)]

    # ----- set-up and teardown

    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None and self.sb is not None and \
                not os.path.exists(self.sb.nspath(NODE_NFT)):
            self.res.context["sandbox_vanished"] = True
        self.down()

    def up(self):
        cfg = self.cfg
        bpf = sandbox.cgroup2_root() is not None
        if not bpf and "ebpf" not in cfg.skip:
            self.ebpf_reason = "no cgroup v2 hierarchy for the eBPF agent's socket programs"
        logs = os.path.join(OUT, "logs")
        shutil.rmtree(logs, ignore_errors=True)
        os.makedirs(logs, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="kproxy-bench-")
        self.sb = Sandbox(nodes=3, ipv6=False, bpf=bpf, log_dir=logs)
        self.marks += [self.sb.prefix, self.dir]
        log(f"sandbox {self.sb.prefix}: 3 nodes, API emulator, "
            f"{1 + cfg.endpoints} pods per node")
        self.sb.up()
        pki = os.path.join(self.dir, "pki")
        subprocess.run(["sh", GENCERTS, pki, sandbox.API_ADDR], check=True)
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        subprocess.run(["sh", KUBECONFIG_SH, self.kubeconfig,
                        f"https://{sandbox.API_ADDR}:{API_PORT}",
                        os.path.join(pki, "ca.crt"), TOKEN], check=True)
        self.api_proc = self.sb.spawn("api", [
            sys.executable, APISERVER, "--bind", "0.0.0.0", "--port", str(API_PORT),
            "--tls-cert", os.path.join(pki, "server.crt"),
            "--tls-key", os.path.join(pki, "server.key"), "--token", TOKEN,
            "--history", str(4 * max(cfg.services) + 10 * cfg.changes + 1000)],
            log="apiserver")
        self.api = benchapi.Api(self.sb.nspath("api"), sandbox.API_ADDR, API_PORT,
                                os.path.join(pki, "ca.crt"), TOKEN)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.api.request("GET", "/healthz")
                break
            except (OSError, benchapi.ApiError) as e:
                if self.api_proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the API emulator did not start: {e}\n"
                                     + self.sb.log_of(self.api_proc)[-2000:])
                time.sleep(0.05)
        for k, node in enumerate(self.sb.nodes, 1):
            client = f"c{k}"
            self.sb.add_pod(client, node, ports={})
            self.sb.sysctl(f"pod-{client}", "net.ipv4.ip_local_port_range", "1024 65000")
            servers = []
            for j in range(cfg.endpoints):
                name = f"s{k}-{j}"
                self.sb.add_pod(name, node, ports={"tcp": [benchapi.TARGET_PORT]})
                servers.append(self.sb.pod_ip(name))
            self.pods[node] = (client, servers)
        self.real = {0: self.pods[NODE_NFT][1], 1: self.pods[NODE_EBPF][1]}

    def down(self):
        if self.api:
            self.api.close()
        if self.sb:
            try:
                self.sb.down()
            except sandbox.SandboxError as e:
                log(f"teardown: {e}")
                raise
            finally:
                self.sb = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ----- API objects

    def load(self, n):
        if n <= self.loaded:
            return
        t = time.monotonic()
        self.api.load(self.loaded, n, self.cfg.endpoints, self.real,
                      progress=lambda k: log(f"  {k} Services in the emulator")
                      if k % 5000 == 0 else None)
        log(f"loaded Services {self.loaded}..{n - 1} with their EndpointSlices "
            f"in {time.monotonic() - t:.1f}s")
        self.loaded = n
        lists = [benchapi.timed_list(self.api) for _ in range(2)]
        self.res.context[("api_list", n)] = min(lists)
        log(f"  the emulator serves all Services and EndpointSlices in {min(lists):.2f}s "
            "(paged lists, 500 per page)")

    # ----- agents

    def agent_flags(self, mode, node):
        if mode != "ebpf":
            return []
        return [f"--bpf-cgroup-path={self.sb.cgroup_path(node)}",
                f"--bpf-pin-path={self.sb.bpf_pin_path(node)}"]

    def start_agent(self, mode, node, tag):
        argv = [KPROXY, f"--kubeconfig={self.kubeconfig}", f"--hostname-override={node}",
                f"--proxy-mode={mode}", f"--cluster-cidr={sandbox.CLUSTER_CIDR}",
                "--min-sync-period=0"] + self.agent_flags(mode, node)
        return self.sb.spawn(node, argv, log=f"kproxy-{mode}-{tag}")

    def stop_agent(self, proc):
        if proc is not None:
            self.sb.kill(proc, grace=10)

    def cleanup_node(self, mode, node):
        r = self.sb.exec(node, [KPROXY, "--cleanup"] + self.agent_flags(mode, node),
                         timeout=120)
        if r.returncode != 0:
            raise BenchError(f"kproxy --cleanup on {node} failed ({r.returncode}):\n"
                             f"{(r.stdout + r.stderr)[-2000:]}")

    def agent_tail(self, proc, lines=6):
        text = self.sb.log_of(proc).strip().splitlines()
        return "\n".join(text[-lines:])

    def spawn_watch(self, node, argv):
        return self.sb.spawn(node, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, bufsize=0)

    def full_sync_once(self, n, mode, node, tag, keep):
        """One agent start with n Services present until all of them are in
        the kernel.  Returns a dict of figures; raises BenchError."""
        e = self.cfg.endpoints
        timeout = 60 + n / 100.0
        self.cleanup_node(mode, node)
        if mode == "ebpf":
            watch = [BPFWATCH, "wait", self.maps_dir, str(n), str(n * e),
                     str(int(timeout * 1000))]
        else:
            watch = [NFTWATCH, "wait", "ip", "kproxy", "backends", backend_key(n - 1, e - 1),
                     str(n * e), str(int(timeout * 1000))]
        watcher = self.spawn_watch(node, watch)
        agent = None
        try:
            time.sleep(0.1)        # the watcher is polling by now
            if watcher.poll() is not None:
                raise BenchError(f"{os.path.basename(watch[0])} ended at once: "
                                 f"{watcher.stderr.read().decode()[-500:]}")
            t0 = time.monotonic_ns()
            agent = self.start_agent(mode, node, tag)

            def alive():
                if agent.poll() is not None:
                    raise BenchError(f"the agent exited with status {agent.returncode}:\n"
                                     + self.agent_tail(agent))

            try:
                line = Lines(watcher).read(timeout + 10, alive)
            except (TimeoutError, EOFError) as err:
                raise BenchError(f"no complete sync within {timeout:.0f}s ({err}); agent log:\n"
                                 + self.agent_tail(agent))
            if not line.startswith("done_ns="):
                raise BenchError(f"no complete sync within {timeout:.0f}s ({line}); "
                                 "agent log:\n" + self.agent_tail(agent))
            st = proc_stats(agent.pid)
            f = kv(line)
            out = {"seconds": (int(f["done_ns"]) - t0) / 1e9, "check_ms": float(f["dump_ms"]),
                   "count": int(f["count"]), "peak_rss": st["VmHWM"], "cpu": st["cpu"]}
            if out["count"] != n * e:
                raise BenchError(f"the kernel holds {out['count']} backends, not {n * e}")
            if keep:
                self.agent = agent
                agent = None
            return out
        finally:
            self.sb.kill(watcher)
            if agent is not None:
                self.stop_agent(agent)

    def kproxy(self, n, mode):
        impl = f"kproxy-{mode}"
        node = NODE_EBPF if mode == "ebpf" else NODE_NFT
        cfg, res = self.cfg, self.res
        names = [("full_sync", "s"), ("agent_peak_rss", "MiB"), ("agent_sync_cpu", "s"),
                 ("agent_rest_rss", "MiB"), ("change_p50", "ms"), ("change_p99", "ms"),
                 ("cps", "conn/s"), ("latency_p50", "ms"), ("latency_p99", "ms")]
        if mode == "ebpf":
            if "ebpf" in cfg.skip:
                self.ebpf_reason = self.ebpf_reason or "skipped (BENCH_SKIP)"
            elif not os.access(BPFWATCH, os.X_OK):
                self.ebpf_reason = self.ebpf_reason or "bpfwatch did not build"
            elif map_version() is None:
                self.ebpf_reason = self.ebpf_reason or "no KPROXY_MAP_VERSION in lb.h"
            if self.ebpf_reason:
                res.skip(names, impl, n, "skipped: " + self.ebpf_reason)
                return
            self.maps_dir = os.path.join(self.sb.bpf_pin_path(node), f"v{map_version()}")
        log(f"{impl}: {cfg.runs} full syncs of {n} Services on {node}")
        runs = []
        try:
            for r in range(cfg.runs):
                runs.append(self.full_sync_once(n, mode, node, f"{n}-{r}", r == cfg.runs - 1))
                log(f"  run {r + 1}: all {n * cfg.endpoints} backends in the kernel after "
                    f"{runs[-1]['seconds']:.3f}s (checking took {runs[-1]['check_ms']:.0f} ms "
                    f"more), peak RSS {runs[-1]['peak_rss']:.1f} MiB, CPU {runs[-1]['cpu']:.2f}s")
        except BenchError as e:
            self.stop_agent(self.agent)
            self.agent = None
            if mode != "ebpf":
                raise
            self.ebpf_reason = "the agent did not run in eBPF mode: " + \
                str(e).replace("\n", " | ")[:300]
            res.skip(names, impl, n, "skipped: " + self.ebpf_reason)
            return
        res.add("full_sync", impl, n, median([x["seconds"] for x in runs]), "s",
                [x["seconds"] for x in runs])
        res.add("agent_peak_rss", impl, n, median([x["peak_rss"] for x in runs]), "MiB",
                [x["peak_rss"] for x in runs])
        res.add("agent_sync_cpu", impl, n, median([x["cpu"] for x in runs]), "s",
                [x["cpu"] for x in runs])
        try:
            time.sleep(2)
            st0 = proc_stats(self.agent.pid)
            time.sleep(3)
            st = proc_stats(self.agent.pid)
            res.add("agent_rest_rss", impl, n, st["VmRSS"], "MiB")
            res.context[("agent_idle_cpu", impl, n)] = (st["cpu"] - st0["cpu"]) / 3
            if "changes" not in cfg.skip:
                self.incremental(n, mode, node)
            if "datapath" not in cfg.skip:
                client, servers = self.pods[node]
                target = 0 if mode == "nftables" else 1
                direct = servers if mode == "nftables" else None
                self.datapath(n, impl, client, benchapi.vip(target), direct)
        except (BenchError, OSError) as e:
            if mode != "ebpf":
                raise
            # the eBPF dataplane is young: its failures cost its own rows only
            done = {r["name"] for r in res.records if r["impl"] == impl and r["services"] == n}
            why = "failed: " + str(e).replace("\n", " | ")[:300]
            res.skip([x for x in names if x[0] not in done], impl, n, why)
        finally:
            self.stop_agent(self.agent)
            self.agent = None
        self.cleanup_node(mode, node)

    # ----- incremental syncs

    def incremental(self, n, mode, node):
        cfg, res = self.cfg, self.res
        impl = f"kproxy-{mode}"
        e = cfg.endpoints
        pairs = cfg.changes // 2
        timeout_ms = 10000
        log(f"{impl}: {2 * pairs} endpoint changes at {n} Services (--min-sync-period=0)")
        if mode == "ebpf":
            watcher = self.spawn_watch(node, [BPFWATCH, "serve", self.maps_dir])
        else:
            watcher = self.spawn_watch(node, [NFTWATCH, "serve", "ip", "kproxy", "backends"])
        lines = Lines(watcher)
        lat, api_ms, failures = [], [], 0
        agent = self.agent

        def alive():
            if agent.poll() is not None:
                raise BenchError(f"the agent exited with status {agent.returncode}:\n"
                                 + self.agent_tail(agent))

        try:
            for j in range(pairs):
                i = benchapi.TARGETS + (j * 7919) % (n - benchapi.TARGETS)
                eps = benchapi.endpoints_of(i, e, self.real)
                for add in (True, False):
                    if mode == "ebpf":
                        cmd = (f"svc {benchapi.vip(i)} {benchapi.PORT} tcp "
                               f"{e + 1 if add else e} {timeout_ms}")
                    else:
                        cmd = f"{'present' if add else 'absent'} {backend_key(i, e)} {timeout_ms}"
                    lines.write(cmd)
                    state = lines.read(10, alive)
                    if state != "waiting":
                        raise BenchError(f"Service {i} is already in the state a change "
                                         f"should bring ({cmd}: {state})")
                    t0 = time.monotonic_ns()
                    self.api.replace_slice(i, eps + [benchapi.extra_endpoint(i)] if add else eps)
                    t1 = time.monotonic_ns()
                    answer = lines.read(timeout_ms / 1000 + 10, alive)
                    api_ms.append((t1 - t0) / 1e6)
                    if answer.startswith("ok "):
                        lat.append((int(answer.split()[1]) - t0) / 1e6)
                    else:
                        failures += 1
                    time.sleep(0.02)
        finally:
            self.sb.kill(watcher)
        note = f"{len(lat)} changes" + (f", {failures} not seen within {timeout_ms} ms"
                                        if failures else "")
        res.add("change_p50", impl, n, percentile(lat, 0.5), "ms", note=note)
        res.add("change_p99", impl, n, percentile(lat, 0.99), "ms", note=note)
        res.context[("api_write_p50", impl, n)] = percentile(api_ms, 0.5)
        log(f"  (the emulator answered the writes in {percentile(api_ms, 0.5):.2f} ms, p50)")

    # ----- datapath

    def connbench(self, client, targets, conc):
        d = self.cfg.dp_seconds
        r = self.sb.exec(f"pod-{client}", [CONNBENCH, "-c", str(conc), "-d", str(d), "-w", "0.5",
                                           "-t", "2000"] + targets, timeout=d + 30)
        if r.returncode != 0 or "cps=" not in r.stdout:
            raise BenchError(f"connbench from {client} to {targets[0]} failed "
                             f"({r.returncode}): {(r.stdout + r.stderr).strip()[-500:]}")
        f = kv(r.stdout)
        return {k: float(v) for k, v in f.items()}

    def datapath(self, n, impl, client, vip, direct_targets):
        """CPS and latency through the ClusterIP (and straight to the pods)."""
        cfg, res = self.cfg, self.res
        try:
            self.sb.wait_for(f"pod-{client}", "tcp", vip, benchapi.PORT, timeout=20)
        except AssertionError as e:
            raise BenchError(f"{vip}:{benchapi.PORT} does not answer from {client}: {e}")
        svc = [f"{vip}:{benchapi.PORT}"]
        direct = [f"{a}:{benchapi.TARGET_PORT}" for a in direct_targets or []]
        log(f"{impl}: datapath from pod {client} to {vip}, {cfg.runs} runs"
            + (" (and straight to the pods)" if direct else ""))
        rows = {"svc": {"cps": [], "lat": []}, "direct": {"cps": [], "lat": []}}
        for _ in range(cfg.runs):
            rows["svc"]["cps"].append(self.connbench(client, svc, CPS_CONCURRENCY))
            if direct:
                rows["direct"]["cps"].append(self.connbench(client, direct, CPS_CONCURRENCY))
            rows["svc"]["lat"].append(self.connbench(client, svc, 1))
            if direct:
                rows["direct"]["lat"].append(self.connbench(client, direct, 1))
        for key, name in (("svc", impl), ("direct", "direct")):
            if key == "direct" and not direct:
                continue
            cps, lat = rows[key]["cps"], rows[key]["lat"]
            errors = sum(x["errors"] for x in cps + lat)
            note = f"{int(errors)} failed connections" if errors else None
            res.add("cps", name, n, median([x["cps"] for x in cps]), "conn/s",
                    [x["cps"] for x in cps], note)
            res.add("latency_p50", name, n, median([x["p50_ms"] for x in lat]), "ms",
                    [x["p50_ms"] for x in lat], note)
            res.add("latency_p99", name, n, median([x["p99_ms"] for x in lat]), "ms",
                    [x["p99_ms"] for x in lat], note)

    # ----- the dataplane alone

    def dataplane_only(self, n):
        cfg, res = self.cfg, self.res
        log(f"bench_nft: the nftables dataplane alone, {n} Services, {cfg.runs} runs")
        syncs, p50, p99 = [], [], []
        for _ in range(cfg.runs):
            rc, out, err = run_group(["unshare", "--net", "--", BENCH_NFT, str(n),
                                      str(cfg.endpoints), str(cfg.changes)],
                                     timeout=120 + n / 50.0)
            if rc != 0:
                raise BenchError(f"bench_nft failed ({rc}): {(out + err)[-1000:]}")
            for line in out.splitlines():
                f = kv(line)
                if line.startswith("full_sync"):
                    syncs.append(float(f["seconds"]))
                elif line.startswith("change"):
                    p50.append(float(f["p50_ms"]))
                    p99.append(float(f["p99_ms"]))
        res.add("full_sync_dataplane", "kproxy-nftables", n, median(syncs), "s", syncs)
        # The API side without a server: the same objects as list pages.
        secs, rss = [], []
        for _ in range(cfg.runs):
            rc, out, err = run_group([BENCH_DECODE, str(n), str(cfg.endpoints)],
                                     timeout=60 + n / 100.0)
            if rc != 0:
                raise BenchError(f"bench_decode failed ({rc}): {(out + err)[-1000:]}")
            for line in out.splitlines():
                if line.startswith("decode"):
                    f = kv(line)
                    secs.append(float(f["total_s"]))
                    rss.append(float(f["rss_mib"]))
        res.add("list_decode", "kproxy", n, median(secs), "s", secs)
        res.add("list_decode_rss", "kproxy", n, median(rss), "MiB", rss)
        res.add("change_dataplane_p50", "kproxy-nftables", n, median(p50), "ms", p50)
        res.add("change_dataplane_p99", "kproxy-nftables", n, median(p99), "ms", p99)

    # ----- anchors

    def projected(self, kind, n):
        """Seconds a load of kind at n should take, from the earlier sizes."""
        done = [(m, s) for m, s in self.history.get(kind, []) if m < n]
        if not done:
            return None
        m1, s1 = done[-1]
        if s1 is None:
            return float("inf")
        k = 2.0
        if len(done) > 1 and done[-2][1]:
            m0, s0 = done[-2]
            k = min(3.0, max(1.0, math.log(s1 / s0) / math.log(m1 / m0)))
        return s1 * (n / m1) ** k

    def timed_load(self, shell, path, cap, node=None):
        """Seconds the command takes in a fresh namespace (or in node), or
        None when it ran past cap.  The ruleset is flushed afterwards."""
        script = ('t0=$(date +%s%N); ' + shell + ' || exit 3; t1=$(date +%s%N); '
                  'echo "load_ns=$((t1 - t0))"')
        if node is None:
            script += "; nft flush ruleset"
            argv = ["unshare", "--net", "--", "timeout", "-k", "5", str(int(cap)),
                    "sh", "-c", script, "sh", path]
            rc, out, err = run_group(argv, timeout=cap + 120)
        else:
            argv = ["timeout", "-k", "5", str(int(cap)), "sh", "-c", script, "sh", path]
            r = self.sb.exec(node, argv, timeout=cap + 120)
            rc, out, err = r.returncode, r.stdout, r.stderr
        if rc in (None, 124, 137):
            return None
        if rc != 0 or "load_ns=" not in out:
            raise BenchError(f"loading {os.path.basename(path)} failed ({rc}): "
                             f"{(out + err).strip()[-1500:]}")
        return int(kv(out.strip().splitlines()[-1])["load_ns"]) / 1e9

    def anchor(self, kind, impl, name, n, shell, path, last_in_node=None):
        """Loads path R times (once when slow); records the median."""
        cfg, res = self.cfg, self.res
        cap = cfg.anchor_cap
        proj = self.projected(kind, n)
        if proj is not None and proj > cap:
            why = (f"not run: a load would take about {proj:.0f}s, judging by the smaller sizes "
                   f"(over BENCH_ANCHOR_CAP={cap:.0f}s)" if proj != float("inf") else
                   "not run: a smaller size already took over BENCH_ANCHOR_CAP")
            res.add(name, impl, n, None, "s", note=why)
            self.history.setdefault(kind, []).append((n, None))
            return None
        samples = []
        for r in range(cfg.runs):
            # the first load goes into the node that needs the ruleset next
            # (a fresh namespace too), the others into throw-away ones
            into = last_in_node if r == 0 else None
            t = self.timed_load(shell, path, cap, node=into)
            samples.append(t)
            log(f"  {kind} run {r + 1}: " + (f"{t:.2f}s" if t is not None else
                                              f"stopped after {cap:.0f}s")
                + (f" (into {into})" if into else ""))
            if t is None or t > ONE_RUN_ABOVE:
                break
        if samples[0] is None:
            res.add(name, impl, n, None, "s", note=f"stopped after BENCH_ANCHOR_CAP={cap:.0f}s")
            self.history.setdefault(kind, []).append((n, None))
            return None
        note = None
        if len(samples) < cfg.runs:
            note = f"{len(samples)} run{'s' if len(samples) > 1 else ''}: one load took over " \
                f"{ONE_RUN_ABOVE:.0f}s"
        value = median(samples)
        res.add(name, impl, n, value, "s", samples, note)
        self.history.setdefault(kind, []).append((n, value))
        return value

    def anchors(self, n):
        cfg = self.cfg
        e = cfg.endpoints
        path = os.path.join(self.dir, f"kube-proxy-{n}.nft")
        t = time.monotonic()
        with open(path, "w") as f:
            f.write(anchors.kube_proxy_nft(n, e))
        log(f"kube-proxy nftables layout for {n} Services written "
            f"({os.path.getsize(path) >> 20} MiB, {time.monotonic() - t:.1f}s); nft -f")
        self.anchor("nft", "kube-proxy-nftables", "full_sync", n, 'nft -f "$1"', path)
        os.unlink(path)

        client, servers = self.pods[NODE_IPT]
        path = os.path.join(self.dir, f"kube-proxy-{n}.iptables")
        with open(path, "w") as f:
            f.write(anchors.kube_proxy_iptables(n, e, real={0: servers}, last=0))
        log(f"kube-proxy iptables layout for {n} Services written "
            f"({os.path.getsize(path) >> 20} MiB); {self.ipt} --noflush")
        self.anchor("iptables-noflush", "kube-proxy-iptables", "full_sync", n,
                    f'{self.ipt} --noflush < "$1"', path)
        log(f"{self.ipt} (without --noflush) into an empty namespace")
        dp = "datapath" not in cfg.skip
        loaded = self.anchor("iptables", "kube-proxy-iptables", "full_sync_plain", n,
                             f'{self.ipt} < "$1"', path, last_in_node=NODE_IPT if dp else None)
        os.unlink(path)
        if dp:
            try:
                if loaded is None:
                    self.res.skip([("cps", "conn/s"), ("latency_p50", "ms"),
                                   ("latency_p99", "ms")], "kube-proxy-iptables", n,
                                  "not run: the ruleset did not load within the cap")
                else:
                    self.datapath(n, "kube-proxy-iptables", client, benchapi.vip(0), None)
            finally:
                self.sb.exec(NODE_IPT, ["nft", "flush", "ruleset"], timeout=600)


# ------------------------------------------------------------------ main

def main():
    try:
        cfg = Config()
        ipt = preflight(cfg)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    os.makedirs(OUT, exist_ok=True)
    res = Results(cfg)
    info = machine()
    marks = []      # the sandbox prefix and the temporary directory, once known
    log(f"bench ({cfg.scale}): N = {', '.join(map(str, cfg.services))} Services x "
        f"{cfg.endpoints} endpoints, {cfg.runs} runs per figure; {info['nproc']} CPUs, "
        f"{info['cpu']}, kernel {info['kernel']}")
    status = 0
    interrupted = False
    try:
        with Bench(cfg, res, ipt, marks) as b:
            for n in cfg.services:
                b.load(n)
                if "dataplane" not in cfg.skip:
                    b.dataplane_only(n)
                if "nftables" not in cfg.skip:
                    b.kproxy(n, "nftables")
                b.kproxy(n, "ebpf")
                if "anchors" not in cfg.skip:
                    b.anchors(n)
    except (KeyboardInterrupt, SystemExit) as e:
        # Ctrl-C, or SIGTERM/SIGHUP (turned into SystemExit by the sandbox)
        interrupted = True
        status = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 130
        log("interrupted: everything was torn down; partial results follow")
    except (BenchError, sandbox.SandboxError, benchapi.ApiError, OSError,
            subprocess.SubprocessError) as e:
        status = 1
        log(f"error: {e}")
        if res.context.get("sandbox_vanished"):
            log(f"(the sandbox {marks[0]} had disappeared: another process removed it, e.g. "
                "`test/lib/sandbox.py cleanup`, which a concurrent `make test` runs at its end "
                "and which removes every sandbox on the machine)")
    finally:
        leftovers = own_leftovers(marks)
        if leftovers:
            log("left behind: " + "; ".join(leftovers))
            status = status or 1
    res.context["interrupted"] = interrupted or status != 0
    report.write_all(res, cfg, info, OUT)
    print(report.markdown(res, cfg, info))
    log(f"done in {time.monotonic() - T0:.0f}s; results in {os.path.relpath(OUT, REPO)}/"
        "{results.json,sync.svg,summary.md}")
    return status


if __name__ == "__main__":
    sys.exit(main())
