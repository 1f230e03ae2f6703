"""A sandbox "cluster" of Linux network namespaces for kproxy's end-to-end tests and demo.

One sandbox is a set of namespaces named ``<prefix>-<role>``: ``fabric`` holds a
bridge that is the node network (10.89.0.0/24, fd00:89::/64); ``node1``,
``node2``, ... are the nodes, each with an uplink ``eth0`` on the fabric,
forwarding on and a routed pod CIDR (10.244.N.0/24, fd00:244:N::/64);
``client`` is a machine outside the cluster and ``api`` the one where a test
starts the API server emulator; ``pod-<name>`` are pods, each behind a veth
pair like a routed CNI makes them, running ``build/test/echod``.  The module
is both a library (``Sandbox``) and a command line tool::

    python3 test/lib/sandbox.py up [--nodes N] [--no-ipv6] [--pod NAME@NODE[:tcp=P,udp=P]]...
    python3 test/lib/sandbox.py down PREFIX | status [PREFIX] | cleanup [START]
    python3 test/lib/sandbox.py exec PREFIX ROLE -- COMMAND...

With ``bpf=True`` each node also gets a cgroup v2 directory of its own
(``<cgroup v2 root>/kproxy-test-<prefix>/<node>``) that every process run in
the node's namespace or in one of its pods joins before it starts, and a bpf
pin directory (``/sys/fs/bpf/kproxy-test-<prefix>/<node>``): an eBPF-mode agent
attaches its socket programs to its node's cgroup only, never to the root, and
several agents on one host keep apart.  Teardown removes both trees.

State lives in ``/run/kproxy-sandbox/<prefix>.json`` so another process can
tear a sandbox down.  Teardown kills every process inside the sandbox's
namespaces, deletes the namespaces and the state, is idempotent, and also
runs at interpreter exit, on SIGTERM/SIGHUP, and (through a small watcher
process) when the owning process is killed outright.  Nothing is ever added
to the host's own namespace.
"""

import argparse
import atexit
import collections
import ctypes
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import threading
import time

# ----------------------------------------------------------------- constants

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOOLS_SRC = os.path.join(REPO_ROOT, "test", "tools")
TOOLS_BIN = os.environ.get("KPROXY_TEST_BIN", os.path.join(REPO_ROOT, "build", "test"))
ECHOD = os.path.join(TOOLS_BIN, "echod")
PROBE = os.path.join(TOOLS_BIN, "probe")

STATE_DIR = "/run/kproxy-sandbox"
NETNS_DIR = "/run/netns"
NS_START = "kpx-"                 # every sandbox namespace starts with this
PREFIX_RE = re.compile(r"^kpx-[a-z0-9]{1,20}$")

# The node network ("fabric").  10.89.0.1 / fd00:89::1 is a gateway that
# leads nowhere: nodes use it as their default route (so that, as on a real
# node, any destination has a route), and the fabric drops what it receives.
FABRIC_CIDR = "10.89.0.0/24"
FABRIC_CIDR6 = "fd00:89::/64"
FABRIC_GW = "10.89.0.1"
FABRIC_GW6 = "fd00:89::1"
API_ADDR = "10.89.0.2"
API_ADDR6 = "fd00:89::2"
CLIENT_ADDR = "10.89.0.100"
CLIENT_ADDR6 = "fd00:89::100"

# Pods: node N owns 10.244.N.0/24 and fd00:244:N::/64; pod K (from 10) on
# node N is 10.244.N.K and fd00:244:N::K.
CLUSTER_CIDR = "10.244.0.0/16"
CLUSTER_CIDR6 = "fd00:244::/32"
POD_GATEWAY = "169.254.1.1"       # the pods' default gateway (proxy ARP on the node)
POD_GATEWAY6 = "fe80::1"          # on every node-side pod veth
POD_GATEWAY_MAC = "ee:ee:ee:ee:ee:ee"
FIRST_POD_INDEX = 10

# Addresses the tests give to Services.
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_CIDR6 = "fd00:96::/112"
LB_CIDR = "10.90.0.0/24"          # LoadBalancer ingress and externalIPs
LB_CIDR6 = "fd00:90::/112"

# eBPF mode: per-node cgroups and bpf pin directories (see the module doc).
BPF_TEST_PREFIX = "kproxy-test-"
BPFFS_ROOT = "/sys/fs/bpf"

DEFAULT_PORTS = {"tcp": [8080], "udp": [8081]}
PROTOCOLS = ("tcp", "udp", "sctp")


def node_name(n):
    """Role (and Kubernetes node name) of node number n (1-based)."""
    return f"node{n}"


def node_addr(n, family=4):
    """Fabric address of node n: 10.89.0.(10+n) or fd00:89::(10+n)."""
    return f"10.89.0.{10 + n}" if family == 4 else f"fd00:89::{10 + n}"


def pod_cidr(n, family=4):
    """Pod CIDR of node n: 10.244.n.0/24 or fd00:244:n::/64."""
    return f"10.244.{n}.0/24" if family == 4 else f"fd00:244:{n}::/64"


def pod_addr(n, k, family=4):
    """Address of the pod with index k on node n."""
    return f"10.244.{n}.{k}" if family == 4 else f"fd00:244:{n}::{k}"


def family_of(addr):
    """4 or 6 for an address or CIDR string."""
    return ipaddress.ip_network(addr, strict=False).version


class SandboxError(Exception):
    pass


def cgroup2_root():
    """Mount point of the cgroup v2 hierarchy (unified or hybrid layout), or None."""
    try:
        with open("/proc/self/mounts") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return None
    points = [m[1] for m in mounts if len(m) > 2 and m[2] == "cgroup2"]
    for p in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if p in points:
            return p
    return points[0] if points else None


def bpf_test_dirs(prefix):
    """The cgroup and pin directories a sandbox with bpf=True uses (may not exist)."""
    dirs = []
    root = cgroup2_root()
    if root:
        dirs.append(os.path.join(root, BPF_TEST_PREFIX + prefix))
    dirs.append(os.path.join(BPFFS_ROOT, BPF_TEST_PREFIX + prefix))
    return dirs


def _remove_bpf_dirs(prefix):
    """Removes a sandbox's per-node cgroups and bpf pins; returns the problems.

    Run after the sandbox's processes are gone: a cgroup with processes in it
    cannot be removed.  Unpinning the links detaches the programs.
    """
    errors = []
    root = cgroup2_root()
    pins = os.path.join(BPFFS_ROOT, BPF_TEST_PREFIX + prefix)
    if os.path.isdir(pins):
        shutil.rmtree(pins, ignore_errors=True)
        if os.path.exists(pins):
            errors.append(f"bpf pins left in {pins}")
    if root:
        top = os.path.join(root, BPF_TEST_PREFIX + prefix)
        if os.path.isdir(top):
            # cgroups are removed with rmdir, children first
            for dirpath, dirnames, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(dirpath)
                except OSError as e:
                    errors.append(f"cgroup {dirpath}: {e.strerror}")
    return errors


# ------------------------------------------------------------ small helpers

def _run(argv, input=None, check=True, timeout=30):
    p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        detail = (p.stderr or p.stdout).strip()
        shown = " ".join(argv)
        if input:
            shown += "\n  input:\n    " + input.strip().replace("\n", "\n    ")
        raise SandboxError(f"command failed ({p.returncode}): {shown}\n  {detail}")
    return p


def _ip_batch(ns, lines, force=False):
    """Runs ip commands (one per line, no leading "ip") in namespace ns (None: host)."""
    if not lines:
        return
    argv = ["ip"]
    if force:
        argv.append("-force")
    if ns:
        argv += ["-n", ns]
    argv += ["-batch", "-"]
    _run(argv, input="\n".join(lines) + "\n", check=not force)


_kinds = {}


def _link_kind_works(kind):
    """Whether this kernel can make links of a kind (tried in a throw-away namespace)."""
    if kind not in _kinds:
        p = subprocess.run(["unshare", "--net", "ip", "link", "add", "probe0", "type", kind],
                           capture_output=True)
        _kinds[kind] = p.returncode == 0
    return _kinds[kind]


def netns_list():
    """Names of all named network namespaces on the machine."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _proc_start_time(pid):
    """Start time of a process (clock ticks since boot), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    if fields and fields[0] == "Z":
        return None
    return int(fields[19])


def _alive(pid):
    return _proc_start_time(pid) is not None


def _pids_in_netns(names):
    """Pids of the processes whose network namespace is one of the named ones."""
    inodes = {}
    for n in names:
        try:
            st = os.stat(os.path.join(NETNS_DIR, n))
        except OSError:
            continue
        inodes[(st.st_dev, st.st_ino)] = n
    if not inodes:
        return {}
    me = os.getpid()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in inodes:
            found[int(entry)] = inodes[key]
    return found


def _kill_and_wait(pids, grace=1.5, popens=()):
    """SIGTERM the pids, SIGKILL what is left after grace seconds, wait for all."""
    for pop in popens:
        pop.poll()              # reap children that already ended
    pids = {p for p in pids if _alive(p)}
    popens = [p for p in popens if p.pid in pids]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    by_pid = {p.pid: p for p in popens}

    def reap():
        for pid in list(pids):
            pop = by_pid.get(pid)
            if pop is not None:
                pop.poll()
            if not _alive(pid):
                pids.discard(pid)

    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.005)
        reap()
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        time.sleep(0.005)
        reap()
    for pop in popens:          # reap our own children
        try:
            pop.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
    return pids   # anything still here could not be killed


# setns(2) for quick sysctl writes from this process, without a child.
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_netns_lock = threading.Lock()


def _write_sysctls(ns, settings):
    """Writes {"net.ipv4.ip_forward": 1, ...} inside namespace ns.

    The calling thread enters the namespace for the writes and comes back;
    signals are held meanwhile so no Python handler runs in the wrong place.
    """
    if not settings:
        return
    with _netns_lock:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                target = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(target, _CLONE_NEWNET) != 0:
                        e = ctypes.get_errno()
                        raise SandboxError(f"setns {ns}: {os.strerror(e)}")
                finally:
                    os.close(target)
                err = None
                try:
                    for key, value in settings.items():
                        path = "/proc/sys/" + key.replace(".", "/")
                        try:
                            with open(path, "w") as f:
                                f.write(f"{value}\n")
                        except OSError as e:
                            if err is None:
                                err = SandboxError(f"sysctl {key}={value} in {ns}: {e}")
                finally:
                    if _libc.setns(home, _CLONE_NEWNET) != 0:
                        # cannot go home: nothing this process does would be safe
                        os.write(2, b"sandbox: cannot return to the host namespace\n")
                        os._exit(70)
                if err:
                    raise err
            finally:
                os.close(home)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def ensure_tools():
    """Builds build/test/echod and probe from test/tools/ when missing or stale."""
    for tool in ("echod", "probe"):
        src = os.path.join(TOOLS_SRC, tool + ".c")
        out = os.path.join(TOOLS_BIN, tool)
        if os.path.exists(out) and (not os.path.exists(src) or
                                    os.path.getmtime(out) >= os.path.getmtime(src)):
            continue
        if not os.path.exists(src):
            raise SandboxError(f"{out} is missing and {src} does not exist")
        os.makedirs(TOOLS_BIN, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        _run([cc, "-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror",
              "-o", out + ".tmp", src], timeout=120)
        os.replace(out + ".tmp", out)


def _normalize_ports(ports):
    """{"tcp": 8080 | [8080, ...], ...} or [("tcp", 8080), ...] -> {"tcp": [..], ...}"""
    if ports is None:
        ports = DEFAULT_PORTS
    out = {p: [] for p in PROTOCOLS}
    items = ports.items() if isinstance(ports, dict) else ports
    for proto, value in items:
        proto = proto.lower()
        if proto not in out:
            raise SandboxError(f"unknown protocol {proto!r}")
        values = [value] if isinstance(value, int) else list(value)
        out[proto].extend(int(v) for v in values)
    return {p: v for p, v in out.items() if v}


# ------------------------------------------------------------- probe results

class Reply:
    """One request made by probe: an answer (name, client_ip, client_port) or an error."""

    __slots__ = ("ok", "name", "client_ip", "client_port", "answer", "error", "status", "ms",
                 "stray_from")

    def __init__(self, d):
        self.ok = bool(d.get("ok"))
        self.name = d.get("name")
        self.client_ip = d.get("client_ip")
        self.client_port = d.get("client_port")
        self.answer = d.get("answer")
        self.error = d.get("error")
        self.status = d.get("status")
        self.ms = d.get("ms")
        self.stray_from = d.get("stray_from")

    def __repr__(self):
        if self.ok:
            return f"Reply({self.name} {self.client_ip} {self.client_port})"
        return f"Reply(ERROR {self.error})"


class ProbeResult:
    """What one run of probe gave.

    replies: one Reply per request (empty in hold mode).  Shortcuts refer to
    the first reply: name, client_ip, client_port, error.  names / errors list
    all of them, counts is a Counter of names.  ok: every request answered.
    In hold mode: sent, answered, failed, first_error, names_seen.
    """

    def __init__(self, argv, returncode, stdout, stderr, hold=False):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.replies = []
        self.hold = None
        for line in stdout.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if hold:
                self.hold = d
            else:
                self.replies.append(Reply(d))

    # --- request mode
    @property
    def ok(self):
        if self.hold is not None:
            return self.hold.get("failed", 1) == 0 and self.hold.get("sent", 0) > 0
        return bool(self.replies) and all(r.ok for r in self.replies)

    @property
    def all_failed(self):
        if self.hold is not None:
            return self.hold.get("ok", 0) == 0
        return bool(self.replies) and not any(r.ok for r in self.replies)

    @property
    def first(self):
        return self.replies[0] if self.replies else None

    @property
    def name(self):
        return self.first.name if self.first else None

    @property
    def client_ip(self):
        return self.first.client_ip if self.first else None

    @property
    def client_port(self):
        return self.first.client_port if self.first else None

    @property
    def error(self):
        """First error kind ('refused', 'timeout', ...), None if there was none."""
        if self.hold is not None:
            return self.hold.get("first_error")
        for r in self.replies:
            if not r.ok:
                return r.error
        if not self.replies:
            return "error:no output from probe: " + (self.stderr.strip() or f"rc {self.returncode}")
        return None

    @property
    def names(self):
        return [r.name for r in self.replies if r.ok]

    @property
    def errors(self):
        return [r.error for r in self.replies if not r.ok]

    @property
    def counts(self):
        return collections.Counter(self.names)

    # --- hold mode
    @property
    def sent(self):
        return (self.hold or {}).get("sent", 0)

    @property
    def answered(self):
        return (self.hold or {}).get("ok", 0)

    @property
    def failed(self):
        if self.hold is not None:
            return self.hold.get("failed", 0)
        return len(self.errors)

    @property
    def first_error(self):
        return self.error

    @property
    def names_seen(self):
        return (self.hold or {}).get("names", {})

    def expect_ok(self):
        """Raises AssertionError (with the details) unless every request was answered."""
        if not self.ok:
            raise AssertionError(f"probe failed: {self}")
        return self

    def expect_error(self, kind=None):
        """Raises AssertionError unless every request failed (with this kind, if given)."""
        if self.hold is not None:
            bad = self.answered > 0 or (kind is not None and self.first_error != kind)
        else:
            bad = not self.all_failed or (kind is not None and any(e != kind for e in self.errors))
        if bad:
            raise AssertionError(f"expected every request to fail ({kind or 'any kind'}): {self}")
        return self

    def __repr__(self):
        if self.hold is not None:
            body = json.dumps(self.hold)
        else:
            body = ", ".join(repr(r) for r in self.replies) or "no replies"
        extra = f" stderr={self.stderr.strip()!r}" if self.stderr.strip() else ""
        return f"<probe {' '.join(self.argv[2:])} rc={self.returncode}: {body}{extra}>"


# -------------------------------------------------------------------- pods

class Pod:
    """A pod: its namespace, node, index, addresses, veth and echod ports/process."""

    def __init__(self, name, node, index, ns, veth, ip4, ip6, ports):
        self.name = name
        self.node = node
        self.index = index
        self.ns = ns
        self.veth = veth
        self.ip4 = ip4
        self.ip6 = ip6
        self.ports = ports
        self.server = None       # Popen of echod (None when attached / stopped)
        self.server_pid = None

    def ip(self, family=4):
        return self.ip4 if family == 4 else self.ip6

    def to_json(self):
        return {"name": self.name, "node": self.node, "index": self.index, "ns": self.ns,
                "veth": self.veth, "ip4": self.ip4, "ip6": self.ip6, "ports": self.ports,
                "server_pid": self.server_pid}

    @classmethod
    def from_json(cls, d):
        p = cls(d["name"], d["node"], d["index"], d["ns"], d["veth"], d["ip4"], d["ip6"],
                d["ports"])
        p.server_pid = d.get("server_pid")
        return p

    def __repr__(self):
        return f"Pod({self.name} on {self.node}: {self.ip4} {self.ip6 or ''})"


# ----------------------------------------------------------------- sandbox

_live = []                      # sandboxes this process owns and must tear down
_safety_installed = False


def _safety_teardown():
    for sb in list(_live):
        try:
            sb.down()
        except Exception as e:       # keep going: the others must go too
            print(f"sandbox {sb.prefix}: teardown failed: {e}", file=sys.stderr)


def _on_fatal_signal(signum, frame):
    # leave through SystemExit so that finally blocks and atexit run
    raise SystemExit(128 + signum)


def _install_safety_net():
    global _safety_installed
    if _safety_installed:
        return
    _safety_installed = True
    atexit.register(_safety_teardown)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _on_fatal_signal)


class Sandbox:
    """A cluster of network namespaces; see the module documentation.

    Sandbox(prefix=None, nodes=2, ipv6=True, log_dir=None, reaper=True,
    keep=False, default_route=True).  Nothing is created until up() (or
    `with Sandbox() as sb`).  keep=True leaves the sandbox in place when this
    process ends (the CLI's "up" does this); reaper=False skips the watcher
    process that tears the sandbox down if this process is killed with
    SIGKILL; default_route=False leaves nodes without their default route
    via the fabric's dead-end gateway (then a node reaches only the fabric,
    its pods and other nodes' pods, and Service addresses need route()).
    bpf=True gives each node a cgroup and a bpf pin directory (see the module
    documentation, cgroup_path() and bpf_pin_path()).
    """

    def __init__(self, prefix=None, nodes=2, ipv6=True, log_dir=None, reaper=True, keep=False,
                 default_route=True, bpf=False):
        if prefix is None:
            prefix = NS_START + "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
        if not PREFIX_RE.match(prefix):
            raise SandboxError(f"bad prefix {prefix!r}: must match {PREFIX_RE.pattern}")
        if not 1 <= nodes <= 50:
            raise SandboxError("nodes must be 1..50")
        self.prefix = prefix
        self.node_count = nodes
        self.ipv6 = ipv6
        self.keep = keep
        self.default_route = default_route
        self.bpf = bpf
        self.use_reaper = reaper and not keep
        self.run_dir = os.path.join(STATE_DIR, prefix)
        self.log_dir = log_dir or os.path.join(self.run_dir, "logs")
        self.state_path = os.path.join(STATE_DIR, prefix + ".json")
        self.nodes = [node_name(n) for n in range(1, nodes + 1)]
        self.roles = ["fabric"] + self.nodes + ["client", "api"]
        self.pods = {}
        self.node_addrs = {n: [] for n in self.nodes}   # extra addresses
        self._next_index = {n: FIRST_POD_INDEX for n in self.nodes}
        self._procs = []          # Popen objects spawned here
        self._proc_info = []      # [{"pid", "start", "role", "argv"}] incl. attached
        self._reaper = None
        self._reaper_fd = None
        self._up = False
        self._owner = os.getpid()
        self.setup_seconds = None

    # ----- names and addresses

    def ns(self, role):
        """Namespace name of a role: fabric, nodeN, client, api, pod-NAME (or a pod NAME)."""
        if role in self.roles:
            return f"{self.prefix}-{role}"
        if role.startswith("pod-") and role[4:] in self.pods:
            return self.pods[role[4:]].ns
        if role in self.pods:
            return self.pods[role].ns
        raise SandboxError(f"no namespace for role {role!r} in {self.prefix}")

    def nspath(self, role):
        return os.path.join(NETNS_DIR, self.ns(role))

    def namespaces(self):
        return [self.ns(r) for r in self.roles] + [p.ns for p in self.pods.values()]

    def node_index(self, node):
        if node not in self.nodes:
            raise SandboxError(f"no node {node!r} (nodes: {', '.join(self.nodes)})")
        return int(node[4:])

    def node_ip(self, node, family=4):
        return node_addr(self.node_index(node), family)

    def node_ips(self, node, family=None):
        """All addresses of a node (fabric address first, then added ones)."""
        n = self.node_index(node)
        out = [node_addr(n, 4)] + ([node_addr(n, 6)] if self.ipv6 else [])
        out += self.node_addrs[node]
        return [a for a in out if family is None or family_of(a) == family]

    def pod_cidr(self, node, family=4):
        return pod_cidr(self.node_index(node), family)

    def pod_ip(self, name, family=4):
        return self.pods[name].ip(family)

    def pod(self, name):
        return self.pods[name]

    def node_of(self, role):
        """The node a role belongs to (a node, or a pod's node), or None."""
        if role in self.roles:      # as ns() does: roles first, then pods
            return role if role in self.nodes else None
        name = role[4:] if role.startswith("pod-") else role
        pod = self.pods.get(name)
        return pod.node if pod else None

    def cgroup_path(self, node):
        """The node's cgroup v2 directory (bpf=True), which its processes join."""
        root = cgroup2_root()
        if not root:
            raise SandboxError("no cgroup v2 hierarchy is mounted")
        return os.path.join(root, BPF_TEST_PREFIX + self.prefix, node)

    def bpf_pin_path(self, node):
        """The node's bpf pin directory (an agent's --bpf-pin-path)."""
        return os.path.join(BPFFS_ROOT, BPF_TEST_PREFIX + self.prefix, node)

    # ----- set-up

    def __enter__(self):
        if not self._up:
            self.up()
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def up(self):
        """Creates the namespaces, the fabric, nodes, client and api.  Returns self."""
        if self._up:
            return self
        t0 = time.monotonic()
        ensure_tools()
        os.makedirs(STATE_DIR, exist_ok=True)
        if os.path.exists(self.state_path) or any(
                n.startswith(self.prefix + "-") for n in netns_list()):
            raise SandboxError(f"sandbox {self.prefix} already exists")
        os.makedirs(self.log_dir, exist_ok=True)
        os.makedirs(self.run_dir, exist_ok=True)
        self._up = True
        if not self.keep:
            _live.append(self)
            _install_safety_net()
        self._save()
        try:
            if self.use_reaper:
                self._start_reaper()
            self._build()
        except BaseException:
            self.down()      # whatever was made so far
            raise
        self._save()
        self.setup_seconds = time.monotonic() - t0
        return self

    def _build(self):
        v6 = self.ipv6
        names = [self.ns(r) for r in self.roles]
        _ip_batch(None, [f"netns add {n}" for n in names])
        if self.bpf:
            for node in self.nodes:
                os.makedirs(self.cgroup_path(node), exist_ok=True)

        common = {
            "net.ipv4.conf.all.rp_filter": 0,
            "net.ipv4.conf.default.rp_filter": 0,
            "net.ipv6.conf.all.accept_dad": 0,
            "net.ipv6.conf.default.accept_dad": 0,
        }
        fabric = dict(common)
        for k in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"):
            if os.path.exists(f"/proc/sys/net/bridge/{k}"):
                fabric[f"net.bridge.{k}"] = 0
        _write_sysctls(self.ns("fabric"), fabric)
        node_sysctls = dict(common)
        node_sysctls.update({"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1})
        for node in self.nodes:
            _write_sysctls(self.ns(node), node_sysctls)
        for r in ("client", "api"):
            _write_sysctls(self.ns(r), common)

        # the fabric: a bridge, and one veth per attached namespace
        fab = ["link set lo up",
               "link add br0 type bridge stp_state 0 mcast_snooping 0",
               "link set br0 up",
               f"addr add {FABRIC_GW}/24 dev br0"]
        if v6:
            fab.append(f"addr add {FABRIC_GW6}/64 dev br0 nodad")
        for r in self.nodes + ["client", "api"]:
            fab += [f"link add {r} type veth peer name eth0 netns {self.ns(r)}",
                    f"link set {r} master br0",
                    f"link set {r} up"]
        _ip_batch(self.ns("fabric"), fab)

        def uplink(addr4, addr6):
            cmds = ["link set lo up", "link set eth0 up", f"addr add {addr4}/24 dev eth0"]
            if v6:
                cmds.append(f"addr add {addr6}/64 dev eth0 nodad")
            return cmds

        for node in self.nodes:
            n = self.node_index(node)
            cmds = uplink(node_addr(n, 4), node_addr(n, 6))
            if self.default_route:
                cmds.append(f"route add default via {FABRIC_GW}")
                if v6:
                    cmds.append(f"route add ::/0 via {FABRIC_GW6}")
            for other in self.nodes:
                m = self.node_index(other)
                if m == n:
                    continue
                cmds.append(f"route add {pod_cidr(m, 4)} via {node_addr(m, 4)}")
                if v6:
                    cmds.append(f"route add {pod_cidr(m, 6)} via {node_addr(m, 6)}")
            _ip_batch(self.ns(node), cmds)
        _ip_batch(self.ns("client"), uplink(CLIENT_ADDR, CLIENT_ADDR6))
        # the API server's machine reaches pods, as a control-plane node does
        api = uplink(API_ADDR, API_ADDR6)
        for node in self.nodes:
            m = self.node_index(node)
            api.append(f"route add {pod_cidr(m, 4)} via {node_addr(m, 4)}")
            if v6:
                api.append(f"route add {pod_cidr(m, 6)} via {node_addr(m, 6)}")
        _ip_batch(self.ns("api"), api)

    # ----- pods

    def add_pod(self, name, node, ports=None, index=None, wait=True):
        """Creates pod namespace <prefix>-pod-<name> on node and starts echod in it.

        ports: {"tcp": [8080], "udp": [8081], "sctp": [...]} (default DEFAULT_PORTS;
        {} for no server).  index: the pod's host number K (default: next free
        from 10).  Returns the Pod.
        """
        if not re.match(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$", name):
            raise SandboxError(f"bad pod name {name!r}")
        if name in self.pods:
            raise SandboxError(f"pod {name} exists")
        if not self._up:
            raise SandboxError("sandbox is not up")
        n = self.node_index(node)
        if index is None:
            index = self._next_index[node]
            used = {p.index for p in self.pods.values() if p.node == node}
            while index in used:
                index += 1
            self._next_index[node] = index + 1
        elif any(p.index == index and p.node == node for p in self.pods.values()):
            raise SandboxError(f"index {index} is taken on {node}")
        if not 2 <= index <= 254:
            raise SandboxError(f"pod index {index} out of range")
        ports = _normalize_ports(ports)
        pod = Pod(name, node, index, f"{self.prefix}-pod-{name}", f"veth{n}p{index}",
                  pod_addr(n, index, 4), pod_addr(n, index, 6) if self.ipv6 else None, ports)
        self.pods[name] = pod
        self._save()
        try:
            _ip_batch(None, [f"netns add {pod.ns}"])
            _write_sysctls(pod.ns, {
                "net.ipv4.conf.all.rp_filter": 0,
                "net.ipv4.conf.default.rp_filter": 0,
                "net.ipv6.conf.all.accept_dad": 0,
                "net.ipv6.conf.default.accept_dad": 0,
            })
            v = pod.veth
            cmds = [f"link add {v} address {POD_GATEWAY_MAC} type veth peer name eth0 netns {pod.ns}",
                    f"link set {v} up",
                    f"route add {pod.ip4}/32 dev {v} scope link"]
            if self.ipv6:
                cmds += [f"addr add {POD_GATEWAY6}/64 dev {v} nodad",
                         f"route add {pod.ip6}/128 dev {v}"]
            _ip_batch(self.ns(node), cmds)
            _write_sysctls(self.ns(node), {f"net.ipv4.conf.{v}.proxy_arp": 1})
            cmds = ["link set lo up",
                    "link set eth0 up",
                    f"addr add {pod.ip4}/32 dev eth0",
                    f"neigh add {POD_GATEWAY} lladdr {POD_GATEWAY_MAC} dev eth0 nud permanent",
                    f"route add {POD_GATEWAY}/32 dev eth0 scope link",
                    f"route add default via {POD_GATEWAY} dev eth0"]
            if self.ipv6:
                cmds += [f"addr add {pod.ip6}/128 dev eth0 nodad",
                         f"neigh add {POD_GATEWAY6} lladdr {POD_GATEWAY_MAC} dev eth0 nud permanent",
                         f"route add ::/0 via {POD_GATEWAY6} dev eth0"]
            _ip_batch(pod.ns, cmds)
            if ports:
                self.start_server(name, ports, wait=wait)
        except BaseException:
            # leave no half-made pod behind (teardown would also catch it)
            try:
                self.remove_pod(name)
            except Exception:
                pass
            raise
        return pod

    def remove_pod(self, name):
        """Stops the pod's processes and deletes its namespace (and so its veth)."""
        pod = self.pods.get(name)
        if pod is None:
            return
        self._stop_server(pod)
        inside = _pids_in_netns([pod.ns])
        _kill_and_wait(inside, popens=self._procs)
        # deleting the node end destroys the pair at once (and the routes through
        # it); a deleted namespace would take its devices away only eventually
        node_ns = self.ns(pod.node)
        if self._link_exists(node_ns, pod.veth):
            _ip_batch(node_ns, [f"link del {pod.veth}"])
        if os.path.exists(os.path.join(NETNS_DIR, pod.ns)):
            _ip_batch(None, [f"netns delete {pod.ns}"])
        del self.pods[name]
        self._save()

    def _link_exists(self, ns, dev):
        return _run(["ip", "-n", ns, "link", "show", "dev", dev], check=False).returncode == 0

    def start_server(self, name, ports=None, wait=True, extra_args=()):
        """Starts echod in pod name (ports as for add_pod; default: the pod's ports)."""
        pod = self.pods[name]
        if pod.server is not None and pod.server.poll() is None:
            raise SandboxError(f"pod {name} already runs its server")
        if ports is not None:
            pod.ports = _normalize_ports(ports)
        argv = [ECHOD, "--name", name]
        for proto in PROTOCOLS:
            for port in pod.ports.get(proto, []):
                argv += [f"--{proto}", str(port)]
        ready = os.path.join(self.run_dir, f"pod-{name}.ready")
        try:
            os.unlink(ready)
        except FileNotFoundError:
            pass
        argv += ["--ready-file", ready] + list(extra_args)
        proc = self.spawn("pod-" + name, argv, log=f"echod-{name}")
        pod.server = proc
        pod.server_pid = proc.pid
        self._save()
        if wait:
            self._wait_ready(proc, ready, f"echod in pod {name}")
        return proc

    def _wait_ready(self, proc, path, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if proc.poll() is not None:
                raise SandboxError(f"{what} exited with status {proc.returncode}:\n"
                                   + self.log_of(proc))
            if time.monotonic() > deadline:
                raise SandboxError(f"{what} not ready after {timeout}s:\n" + self.log_of(proc))
            time.sleep(0.002)

    def _stop_server(self, pod):
        if pod.server is not None:
            _kill_and_wait([pod.server.pid], popens=[pod.server])
            self._forget(pod.server.pid)
        elif pod.server_pid and self._owned(pod.server_pid):
            _kill_and_wait([pod.server_pid])
            self._forget(pod.server_pid)
        pod.server = None
        pod.server_pid = None

    def stop_server(self, name):
        """Stops echod in pod name (the pod and its addresses stay)."""
        self._stop_server(self.pods[name])
        self._save()

    def restart_server(self, name, ports=None, wait=True):
        """Stops echod in pod name and starts it again, with new ports if given."""
        self._stop_server(self.pods[name])
        return self.start_server(name, ports, wait=wait)

    # ----- nodes, routes

    def add_node_address(self, node, ip, dev="eth0"):
        """Adds an address to a node (dev is made, a dummy device, if it is not there).

        Addresses inside the fabric subnets get its prefix length (so other
        fabric members reach them on-link), others are /32 or /128: give the
        client a route to them with route().
        """
        ns = self.ns(node)
        addr = ipaddress.ip_address(ip)
        fab = ipaddress.ip_network(FABRIC_CIDR if addr.version == 4 else FABRIC_CIDR6)
        plen = fab.prefixlen if addr in fab else addr.max_prefixlen
        cmds = []
        if dev != "eth0" and not self._link_exists(ns, dev):
            if len(dev) > 15:
                raise SandboxError(f"interface name {dev!r} is too long")
            # a dummy device; kernels built without one get an ifb (also a
            # device that only holds addresses)
            kind = "dummy" if _link_kind_works("dummy") else "ifb"
            _ip_batch(ns, [f"link add {dev} type {kind}", f"link set {dev} up"])
        cmds.append(f"addr add {ip}/{plen} dev {dev}" + (" nodad" if addr.version == 6 else ""))
        _ip_batch(ns, cmds)
        self.node_addrs[node].append(str(addr))
        self._save()

    def remove_node_address(self, node, ip, dev="eth0"):
        addr = ipaddress.ip_address(ip)
        fab = ipaddress.ip_network(FABRIC_CIDR if addr.version == 4 else FABRIC_CIDR6)
        plen = fab.prefixlen if addr in fab else addr.max_prefixlen
        _ip_batch(self.ns(node), [f"addr del {ip}/{plen} dev {dev}"])
        if str(addr) in self.node_addrs[node]:
            self.node_addrs[node].remove(str(addr))
        self._save()

    def route(self, ns, cidr, via_node=None, via=None):
        """Routes cidr in namespace ns via a node's fabric address (or an explicit via)."""
        fam = family_of(cidr)
        if via is None:
            if via_node is None:
                raise SandboxError("route() needs via_node or via")
            via = self.node_ip(via_node, fam)
        self.ip(ns, "route", "replace", cidr, "via", via)

    def unroute(self, ns, cidr):
        self.ip(ns, "route", "del", cidr, check=False)

    def blackhole(self, ns, cidr):
        """Silently drops what namespace ns would route to cidr (locally sent: EINVAL)."""
        self.ip(ns, "route", "replace", "blackhole", cidr)

    def ip(self, ns, *args, check=True):
        """Runs `ip -n <namespace> args...`; returns the CompletedProcess."""
        return _run(["ip", "-n", self.ns(ns)] + [str(a) for a in args], check=check)

    def sysctl(self, ns, key, value=None):
        """Reads (value None) or writes a sysctl inside a namespace."""
        if value is not None:
            _write_sysctls(self.ns(ns), {key: value})
            return str(value)
        return self.exec(ns, ["cat", "/proc/sys/" + key.replace(".", "/")],
                         check=True).stdout.strip()

    # ----- processes

    def _cmd(self, ns, argv):
        argv = [str(a) for a in argv]
        node = self.node_of(ns) if self.bpf else None
        if node:
            # join the node's cgroup, then become the command (same pid)
            procs = os.path.join(self.cgroup_path(node), "cgroup.procs")
            argv = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs] + argv
        return ["nsenter", f"--net={self.nspath(ns)}", "--"] + argv

    def exec(self, ns, argv, check=False, timeout=60, input=None, env=None, capture=True,
             text=True, cwd=None):
        """Runs argv inside namespace ns and waits; returns the CompletedProcess.

        The process keeps the host's mounts (/sys, cgroup v2, bpffs); the working
        directory is the repository root unless cwd is given.
        """
        return subprocess.run(self._cmd(ns, argv), check=check, timeout=timeout, input=input,
                              env=env, capture_output=capture, text=text, cwd=cwd or REPO_ROOT)

    def spawn(self, ns, argv, log=None, env=None, cwd=None, **popen_kwargs):
        """Starts argv in the background inside namespace ns; it dies at teardown.

        Output goes to a log file (see log_of()) unless stdout/stderr are given;
        the working directory is the repository root unless cwd is given.
        Returns the Popen (with .log_path).
        """
        if not self._up:
            raise SandboxError("sandbox is not up")
        logf = None
        if "stdout" not in popen_kwargs:
            base = log or f"{ns}-{os.path.basename(str(argv[0]))}"
            base = re.sub(r"[^A-Za-z0-9_.-]", "_", base)
            path = os.path.join(self.log_dir, base + ".log")
            k = 1
            while os.path.exists(path):
                k += 1
                path = os.path.join(self.log_dir, f"{base}.{k}.log")
            logf = open(path, "w")
            popen_kwargs["stdout"] = logf
            popen_kwargs.setdefault("stderr", subprocess.STDOUT)
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        popen_kwargs.setdefault("start_new_session", True)
        try:
            proc = subprocess.Popen(self._cmd(ns, argv), env=env, cwd=cwd or REPO_ROOT,
                                    **popen_kwargs)
        finally:
            if logf:
                logf.close()
        proc.log_path = logf.name if logf else None
        self._procs.append(proc)
        self._proc_info.append({"pid": proc.pid, "start": _proc_start_time(proc.pid),
                                "role": ns, "argv": [str(a) for a in argv]})
        self._save()
        return proc

    def log_of(self, proc):
        """The output a spawned process logged so far."""
        path = getattr(proc, "log_path", None)
        if not path:
            return ""
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self, proc, grace=1.5):
        """Stops a spawned process (SIGTERM, SIGKILL after grace seconds)."""
        _kill_and_wait([proc.pid], grace=grace, popens=[proc])
        self._forget(proc.pid)
        self._save()

    def _forget(self, pid):
        self._procs = [p for p in self._procs if p.pid != pid]
        self._proc_info = [i for i in self._proc_info if i["pid"] != pid]

    def _owned(self, pid):
        return any(i["pid"] == pid and i.get("start") == _proc_start_time(pid)
                   for i in self._proc_info)

    # ----- traffic

    def probe(self, ns, proto, addr, port, count=1, timeout_ms=None, interval_ms=None,
              bind=None, connected=False, same_socket=False, hold=None, path=None,
              message=None, connect_only=False, extra=()):
        """Runs build/test/probe in namespace ns; returns a ProbeResult.

        proto: tcp, udp, sctp or http.  hold: seconds of --hold mode.
        connect_only: success once a TCP/SCTP connection is made (any server).
        """
        argv = [PROBE, "--json"]
        if count != 1:
            argv += ["--count", str(count)]
        if timeout_ms is not None:
            argv += ["--timeout", str(int(timeout_ms))]
        if interval_ms is not None:
            argv += ["--interval", str(int(interval_ms))]
        if bind:
            argv += ["--bind", str(bind)]
        if connected:
            argv.append("--connected")
        if same_socket:
            argv.append("--same-socket")
        if hold:
            argv += ["--hold", str(hold)]
        if path:
            argv += ["--path", path]
        if message:
            argv += ["--message", message]
        if connect_only:
            argv.append("--connect-only")
        argv += list(extra) + [proto, str(addr), str(port)]
        t = (timeout_ms or 2000) / 1000.0
        limit = (hold or 0) + count * (t + (interval_ms or 0) / 1000.0) + t + 10
        p = self.exec(ns, argv, timeout=limit)
        return ProbeResult(argv, p.returncode, p.stdout, p.stderr, hold=bool(hold))

    def wait_for(self, ns, proto, addr, port, ok=True, until=None, timeout=10.0, every=0.05,
                 **probe_opts):
        """Probes until the result is ok (or all failed, ok=False; or until(result)).

        Returns the last ProbeResult; raises AssertionError with it on time-out.
        """
        probe_opts.setdefault("timeout_ms", 500)
        deadline = time.monotonic() + timeout
        while True:
            r = self.probe(ns, proto, addr, port, **probe_opts)
            if until is not None:
                good = until(r)
            else:
                good = r.ok if ok else r.all_failed
            if good:
                return r
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout}s in vain for {proto} {addr} {port} "
                                     f"from {ns}: {r}")
            time.sleep(every)

    def wait_listen(self, ns, addr, port, timeout=10.0, proto="tcp"):
        """Waits until something accepts connections on addr:port, seen from ns."""
        return self.wait_for(ns, proto, addr, port, timeout=timeout, connect_only=True,
                             timeout_ms=300)

    # ----- state

    def _state(self):
        return {
            "version": 1,
            "prefix": self.prefix,
            "owner_pid": self._owner,
            "keep": self.keep,
            "created": time.time(),
            "nodes": self.node_count,
            "ipv6": self.ipv6,
            "default_route": self.default_route,
            "roles": self.roles,
            "namespaces": self.namespaces(),
            "pods": {n: p.to_json() for n, p in self.pods.items()},
            "node_addrs": self.node_addrs,
            "next_index": self._next_index,
            "procs": self._proc_info,
            "reaper_pid": self._reaper.pid if self._reaper else None,
            "log_dir": self.log_dir,
            "bpf": self.bpf,
        }

    def _save(self):
        tmp = self.state_path + f".{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(self._state(), f, indent=1)
        os.replace(tmp, self.state_path)

    @classmethod
    def attach(cls, prefix):
        """A Sandbox object for an existing sandbox (made by another process)."""
        st = load_state(prefix)
        if st is None:
            raise SandboxError(f"no state for sandbox {prefix} in {STATE_DIR}")
        sb = cls(prefix=prefix, nodes=st["nodes"], ipv6=st["ipv6"], log_dir=st.get("log_dir"),
                 reaper=False, keep=True, default_route=st.get("default_route", True),
                 bpf=st.get("bpf", False))
        sb.pods = {n: Pod.from_json(d) for n, d in st.get("pods", {}).items()}
        sb.node_addrs = st.get("node_addrs", sb.node_addrs)
        sb._next_index = st.get("next_index", sb._next_index)
        sb._proc_info = st.get("procs", [])
        sb._owner = st.get("owner_pid")
        sb._up = True
        return sb

    def status(self):
        """Namespaces present, pods, and the spawned processes still alive."""
        present = set(netns_list())
        return {
            "prefix": self.prefix,
            "namespaces": {n: n in present for n in self.namespaces()},
            "pods": {n: {"node": p.node, "ip4": p.ip4, "ip6": p.ip6, "ports": p.ports}
                     for n, p in self.pods.items()},
            "procs": [i for i in self._proc_info if _alive(i["pid"])],
        }

    # ----- teardown

    def _start_reaper(self):
        r, w = os.pipe()
        try:
            self._reaper = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "_reap", self.prefix, str(self._owner)],
                stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True)
        finally:
            os.close(r)
        self._reaper_fd = w

    def down(self):
        """Removes everything the sandbox made.  Safe to call more than once."""
        if self._owner is not None and self._owner != os.getpid() and not self.keep \
                and self in _live:
            return    # a forked child must not tear down its parent's sandbox
        errors = teardown_prefix(self.prefix, popens=self._procs, known=self._proc_info,
                                 namespaces=self.namespaces() if self._up else ())
        self._procs = []
        self._proc_info = []
        for p in self.pods.values():
            p.server = None
            p.server_pid = None
        if self._reaper_fd is not None:
            os.close(self._reaper_fd)   # the watcher sees EOF, finds no state, exits
            self._reaper_fd = None
        if self._reaper is not None:
            try:
                self._reaper.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._reaper.kill()
                self._reaper.wait()
            self._reaper = None
        if self in _live:
            _live.remove(self)
        self._up = False
        if errors:
            raise SandboxError(f"teardown of {self.prefix} incomplete: " + "; ".join(errors))

    teardown = down
    close = down


# ----------------------------------------------------- prefix-level helpers

def load_state(prefix):
    try:
        with open(os.path.join(STATE_DIR, prefix + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _prefix_of(ns_name):
    parts = ns_name.split("-")
    return "-".join(parts[:2]) if len(parts) >= 2 and ns_name.startswith(NS_START) else None


def list_sandboxes(start=NS_START):
    """Prefixes of all sandboxes on the machine (by namespace or by state file)."""
    found = set()
    for n in netns_list():
        p = _prefix_of(n)
        if p and p.startswith(start):
            found.add(p)
    try:
        for f in os.listdir(STATE_DIR):
            if f.endswith(".json") and f.startswith(start):
                found.add(f[:-5])
    except FileNotFoundError:
        pass
    # cgroups and pins of sandboxes whose state is gone
    for parent in [cgroup2_root(), BPFFS_ROOT]:
        try:
            names = os.listdir(parent) if parent else []
        except OSError:
            names = []
        for n in names:
            p = n[len(BPF_TEST_PREFIX):] if n.startswith(BPF_TEST_PREFIX) else ""
            if p.startswith(start) and PREFIX_RE.match(p):
                found.add(p)
    return sorted(found)


def teardown_prefix(prefix, popens=(), known=(), namespaces=()):
    """Tears down sandbox prefix: its processes, namespaces, state and run files.

    Returns a list of problems (empty when everything is gone).
    """
    if not PREFIX_RE.match(prefix):
        return [f"refusing to tear down {prefix!r}: not a sandbox prefix"]
    st = load_state(prefix) or {}
    names = [n for n in netns_list() if n.startswith(prefix + "-")]
    known = list(known) + list(st.get("procs", []))
    # processes started for the sandbox (checked by start time: a pid may be reused)
    pids = {i["pid"] for i in known
            if i.get("start") is not None and _proc_start_time(i["pid"]) == i["start"]}
    pids |= set(_pids_in_netns(names))
    errors = []
    left = _kill_and_wait(pids, popens=popens)
    if left:
        errors.append(f"processes {sorted(left)} would not die")
    if names:
        _ip_batch(None, [f"netns delete {n}" for n in names], force=True)
    still = [n for n in netns_list() if n.startswith(prefix + "-")]
    if still:
        errors.append("namespaces left: " + ", ".join(still))
    errors += _remove_bpf_dirs(prefix)
    for path in (os.path.join(STATE_DIR, prefix + ".json"),):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    shutil.rmtree(os.path.join(STATE_DIR, prefix), ignore_errors=True)
    log_dir = st.get("log_dir")
    if log_dir and os.path.realpath(log_dir).startswith(os.path.join(STATE_DIR, prefix) + "/"):
        shutil.rmtree(log_dir, ignore_errors=True)
    return errors


def cleanup(start=NS_START):
    """Tears down every sandbox whose prefix starts with `start` (default: all)."""
    if not start.startswith(NS_START):
        raise SandboxError(f"cleanup only handles names starting with {NS_START}")
    errors = []
    done = []
    for prefix in list_sandboxes(start):
        errors += teardown_prefix(prefix)
        done.append(prefix)
    # namespaces whose names do not parse as <prefix>-<role>
    stray = [n for n in netns_list() if n.startswith(start)]
    if stray:
        left = _kill_and_wait(set(_pids_in_netns(stray)))
        if left:
            errors.append(f"processes {sorted(left)} would not die")
        _ip_batch(None, [f"netns delete {n}" for n in stray], force=True)
        done += stray
    return done, errors


def _reap_main(prefix, owner):
    """The watcher: waits for its owner to go away, then tears the sandbox down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    st = load_state(prefix)
    if not st or st.get("keep") or st.get("owner_pid") != owner:
        return 0
    # the owner may still be finishing its own teardown: give it a moment
    time.sleep(0.2)
    if load_state(prefix) is None:
        return 0
    teardown_prefix(prefix)
    return 0


# ---------------------------------------------------------------------- CLI

def _parse_pod_spec(spec):
    """NAME@NODE[:tcp=8080+8082,udp=8081] -> (name, node, ports)"""
    m = re.match(r"^([a-z0-9-]+)@(node\d+)(?::(.*))?$", spec)
    if not m:
        raise SandboxError(f"bad --pod {spec!r}: NAME@NODE[:tcp=P+P,udp=P]")
    ports = None
    if m.group(3):
        ports = {}
        for part in m.group(3).split(","):
            proto, _, vals = part.partition("=")
            ports[proto] = [int(v) for v in vals.split("+") if v]
    return m.group(1), m.group(2), ports


def _describe(sb):
    lines = [f"sandbox {sb.prefix}",
             f"  fabric {FABRIC_CIDR} {FABRIC_CIDR6 if sb.ipv6 else ''}",
             f"  api    {API_ADDR} {API_ADDR6 if sb.ipv6 else ''}  ({sb.ns('api')})",
             f"  client {CLIENT_ADDR} {CLIENT_ADDR6 if sb.ipv6 else ''}  ({sb.ns('client')})"]
    for node in sb.nodes:
        lines.append(f"  {node}  {' '.join(sb.node_ips(node))}  pods {sb.pod_cidr(node)}"
                     + (f" {sb.pod_cidr(node, 6)}" if sb.ipv6 else "") + f"  ({sb.ns(node)})")
    for p in sb.pods.values():
        ports = " ".join(f"{k}:{','.join(map(str, v))}" for k, v in p.ports.items())
        lines.append(f"  pod {p.name} on {p.node}  {p.ip4} {p.ip6 or ''}  {ports}  ({p.ns})")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="sandbox.py", description="kproxy network-namespace sandbox")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="create a sandbox and leave it running")
    p_up.add_argument("--prefix")
    p_up.add_argument("--nodes", type=int, default=2)
    p_up.add_argument("--no-ipv6", action="store_true")
    p_up.add_argument("--pod", action="append", default=[], metavar="NAME@NODE[:tcp=P,udp=P]")
    p_up.add_argument("--json", action="store_true")
    p_down = sub.add_parser("down", help="tear down one sandbox")
    p_down.add_argument("prefix", nargs="?")
    p_down.add_argument("--prefix", dest="prefix_opt")
    p_st = sub.add_parser("status", help="list sandboxes")
    p_st.add_argument("prefix", nargs="?")
    p_st.add_argument("--json", action="store_true")
    p_cl = sub.add_parser("cleanup", help="tear down every kpx- sandbox")
    p_cl.add_argument("start", nargs="?", default=NS_START,
                      help="only sandboxes whose prefix starts with this (default kpx-)")
    p_ex = sub.add_parser("exec", help="run a command in a sandbox namespace")
    p_ex.add_argument("prefix")
    p_ex.add_argument("role")
    p_ex.add_argument("command", nargs=argparse.REMAINDER)
    p_rp = sub.add_parser("_reap")
    p_rp.add_argument("prefix")
    p_rp.add_argument("owner", type=int)
    a = ap.parse_args(argv)

    if a.cmd == "_reap":
        return _reap_main(a.prefix, a.owner)
    if a.cmd == "up":
        t0 = time.monotonic()
        sb = Sandbox(prefix=a.prefix, nodes=a.nodes, ipv6=not a.no_ipv6, keep=True, reaper=False)
        sb.up()
        try:
            for spec in a.pod:
                name, node, ports = _parse_pod_spec(spec)
                sb.add_pod(name, node, ports=ports)
        except BaseException:
            sb.down()
            raise
        if a.json:
            print(json.dumps(sb._state(), indent=1))
        else:
            print(_describe(sb))
            print(f"  set up in {time.monotonic() - t0:.2f}s; remove with: "
                  f"python3 {os.path.relpath(__file__)} down {sb.prefix}")
        return 0
    if a.cmd == "down":
        prefix = a.prefix or a.prefix_opt
        if not prefix:
            ap.error("down needs a prefix")
        errors = teardown_prefix(prefix)
        for e in errors:
            print(e, file=sys.stderr)
        return 1 if errors else 0
    if a.cmd == "status":
        prefixes = [a.prefix] if a.prefix else list_sandboxes()
        out = []
        for prefix in prefixes:
            st = load_state(prefix)
            nss = [n for n in netns_list() if n.startswith(prefix + "-")]
            ns_procs = _pids_in_netns(nss)
            owner = st.get("owner_pid") if st else None
            out.append({"prefix": prefix, "state": bool(st), "namespaces": nss,
                        "pods": sorted((st or {}).get("pods", {})),
                        "processes": len(ns_procs),
                        "owner_pid": owner, "owner_alive": bool(owner and _alive(owner))})
        if a.json:
            print(json.dumps(out, indent=1))
        elif not out:
            print("no sandboxes")
        else:
            for s in out:
                print(f"{s['prefix']}: {len(s['namespaces'])} namespaces, pods "
                      f"{','.join(s['pods']) or '-'}, {s['processes']} processes, owner "
                      f"{s['owner_pid']} ({'alive' if s['owner_alive'] else 'gone'})"
                      + ("" if s["state"] else ", no state file"))
        return 0
    if a.cmd == "cleanup":
        done, errors = cleanup(a.start)
        for d in done:
            print(f"removed {d}")
        for e in errors:
            print(e, file=sys.stderr)
        return 1 if errors else 0
    if a.cmd == "exec":
        cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
        if not cmd:
            ap.error("exec needs a command")
        sb = Sandbox.attach(a.prefix)
        return subprocess.call(sb._cmd(a.role, cmd))
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SandboxError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        sys.exit(1)
