"""Service defaulting and ClusterIP / NodePort allocation, as the real server does it.

prepare() fills in the defaults kube-apiserver applies to a Service (type,
sessionAffinity, port protocol and targetPort, IP families and policy,
traffic policies) and allocates cluster IPs from the service CIDRs and node
ports from the node-port range.  On update it carries the old cluster IPs and
node ports over when the new body leaves them out, and drops fields that the
new type no longer uses.  Allocation errors are 422 Invalid, as in a real
cluster.  The caller holds the store lock, so allocation is race free.
"""

import ipaddress
import random

from .errors import invalid

IPV4, IPV6 = "IPv4", "IPv6"
SINGLE, PREFER, REQUIRE = "SingleStack", "PreferDualStack", "RequireDualStack"
NODEPORT_TYPES = ("NodePort", "LoadBalancer")


class _Invalid(Exception):
    def __init__(self, field, reason, message):
        super().__init__(message)
        self.cause = (field, reason, message)


def _family(ip):
    return IPV4 if ip.version == 4 else IPV6


class Allocator:
    """Which cluster IPs and node ports are in use."""

    def __init__(self, cidrs="10.96.0.0/16,fd00:96::/112", node_ports="30000-32767"):
        self.nets = {}
        self.families = []
        for c in (x.strip() for x in cidrs.split(",")):
            if not c:
                continue
            net = ipaddress.ip_network(c, strict=False)
            fam = _family(net)
            if fam in self.nets:
                raise ValueError(f"more than one {fam} service range in {cidrs!r}")
            self.nets[fam] = net
            self.families.append(fam)
        if not self.families:
            raise ValueError("no service cluster IP range")
        lo, _, hi = node_ports.partition("-")
        self.port_lo, self.port_hi = int(lo), int(hi or lo)
        if not 0 < self.port_lo <= self.port_hi < 65536:
            raise ValueError(f"bad node port range {node_ports!r}")
        self.ips = set()
        self.ports = set()

    # ---- cluster IPs

    def _bounds(self, net):
        first = int(net.network_address) + 1
        last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
        if last < first:
            first = last = int(net.network_address)
        return first, last

    def in_range(self, ip):
        net = self.nets.get(_family(ip))
        if net is None or ip not in net:
            return False
        first, last = self._bounds(net)
        return first <= int(ip) <= last

    def random_ip(self, fam):
        net = self.nets[fam]
        first, last = self._bounds(net)
        size = last - first + 1
        cls = ipaddress.IPv4Address if fam == IPV4 else ipaddress.IPv6Address
        for _ in range(64):
            ip = cls(first + random.randrange(size))
            if ip not in self.ips:
                return ip
        if size > 1 << 20:
            return None
        start = random.randrange(size)
        for i in range(size):
            ip = cls(first + (start + i) % size)
            if ip not in self.ips:
                return ip
        return None

    # ---- node ports

    def random_port(self):
        size = self.port_hi - self.port_lo + 1
        start = random.randrange(size)
        for i in range(size):
            p = self.port_lo + (start + i) % size
            if p not in self.ports:
                return p
        return None

    def release(self, svc):
        ips, ports = owned(svc)
        self.ips.difference_update(ips)
        self.ports.difference_update(ports)


def owned(svc):
    """The cluster IPs and node ports a stored Service holds."""
    spec = (svc or {}).get("spec") or {}
    ips = set()
    for s in spec.get("clusterIPs") or []:
        try:
            ips.add(ipaddress.ip_address(s))
        except ValueError:
            pass
    ports = {p["nodePort"] for p in spec.get("ports") or [] if isinstance(p.get("nodePort"), int)}
    if isinstance(spec.get("healthCheckNodePort"), int):
        ports.add(spec["healthCheckNodePort"])
    return ips, ports


class _Txn:
    """Allocations made while preparing one Service, undone if it fails."""

    def __init__(self, alloc, old):
        self.alloc = alloc
        self.old_ips, self.old_ports = owned(old)
        self.new_ips, self.new_ports = set(), set()
        self.kept_ips, self.kept_ports = set(), set()

    def take_ip(self, ip, field):
        if ip in self.old_ips:
            self.kept_ips.add(ip)
            return
        if not self.alloc.in_range(ip):
            raise _Invalid(field, "FieldValueInvalid",
                           f"Invalid value: \"{ip}\": failed to allocate IP {ip}: "
                           f"the provided IP ({ip}) is not in the valid range")
        if ip in self.alloc.ips or ip in self.new_ips:
            raise _Invalid(field, "FieldValueInvalid",
                           f"Invalid value: \"{ip}\": failed to allocate IP {ip}: "
                           f"provided IP is already allocated")
        self.alloc.ips.add(ip)
        self.new_ips.add(ip)

    def any_ip(self, fam, field):
        ip = self.alloc.random_ip(fam)
        if ip is None:
            raise _Invalid(field, "FieldValueInvalid",
                           f"failed to allocate a serviceIP: range is full ({fam})")
        self.take_ip(ip, field)
        return ip

    def take_port(self, port, field):
        if port in self.old_ports:
            self.kept_ports.add(port)
            return
        if port in self.new_ports:
            return
        if not self.alloc.port_lo <= port <= self.alloc.port_hi:
            raise _Invalid(field, "FieldValueInvalid",
                           f"Invalid value: {port}: provided port is not in the valid range. "
                           f"The range of valid ports is {self.alloc.port_lo}-{self.alloc.port_hi}")
        if port in self.alloc.ports:
            raise _Invalid(field, "FieldValueInvalid",
                           f"Invalid value: {port}: provided port is already allocated")
        self.alloc.ports.add(port)
        self.new_ports.add(port)

    def any_port(self, field):
        p = self.alloc.random_port()
        if p is None:
            raise _Invalid(field, "FieldValueInvalid", "failed to allocate a nodePort: range is full")
        self.take_port(p, field)
        return p

    def rollback(self):
        self.alloc.ips.difference_update(self.new_ips)
        self.alloc.ports.difference_update(self.new_ports)

    def finish(self):
        """Release what the old object held and the new one no longer does."""
        self.alloc.ips.difference_update(self.old_ips - self.kept_ips)
        self.alloc.ports.difference_update(self.old_ports - self.kept_ports)


def prepare(alloc, res, svc, old):
    """Default and allocate svc (old: the stored version on update, else None).

    Returns a commit callback that releases what the old object no longer
    holds, and an abort callback; raises ApiError 422 on invalid input."""
    txn = _Txn(alloc, old)
    name = (svc.get("metadata") or {}).get("name", "")
    try:
        _prepare(alloc, txn, svc, old)
    except _Invalid as e:
        txn.rollback()
        raise invalid(res, name, [e.cause]) from None
    except Exception:
        txn.rollback()
        raise
    return txn.finish, txn.rollback


def _port_key(p):
    return (p.get("port"), p.get("protocol", "TCP"))


def _prepare(alloc, txn, svc, old):
    spec = svc.get("spec")
    if not isinstance(spec, dict):
        spec = svc["spec"] = {}
    ospec = (old or {}).get("spec") or {}
    typ = spec.setdefault("type", "ClusterIP")
    if typ not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        raise _Invalid("spec.type", "FieldValueNotSupported",
                       f"Unsupported value: \"{typ}\": supported values: \"ClusterIP\", "
                       f"\"ExternalName\", \"LoadBalancer\", \"NodePort\"")
    otyp = ospec.get("type") if old else None
    aff = spec.setdefault("sessionAffinity", "None")
    if aff == "ClientIP":
        spec.setdefault("sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 10800}})
    elif aff != "None":
        raise _Invalid("spec.sessionAffinity", "FieldValueNotSupported",
                       f"Unsupported value: \"{aff}\": supported values: \"ClientIP\", \"None\"")

    # Ports: protocol and targetPort defaults, basic range checks.
    ports = spec.get("ports")
    if ports is None:
        ports = []
    if not isinstance(ports, list):
        raise _Invalid("spec.ports", "FieldValueInvalid", "must be a list")
    for i, p in enumerate(ports):
        if not isinstance(p, dict):
            raise _Invalid(f"spec.ports[{i}]", "FieldValueInvalid", "must be an object")
        port = p.get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise _Invalid(f"spec.ports[{i}].port", "FieldValueInvalid",
                           f"Invalid value: {port!r}: must be between 1 and 65535, inclusive")
        p.setdefault("protocol", "TCP")
        if p["protocol"] not in ("TCP", "UDP", "SCTP"):
            raise _Invalid(f"spec.ports[{i}].protocol", "FieldValueNotSupported",
                           f"Unsupported value: \"{p['protocol']}\": supported values: \"SCTP\", \"TCP\", \"UDP\"")
        if p.get("targetPort") in (None, 0, ""):
            p["targetPort"] = port
    if len(ports) > 1:
        for i, p in enumerate(ports):
            if not p.get("name"):
                raise _Invalid(f"spec.ports[{i}].name", "FieldValueRequired",
                               "Required value: must be specified when there is more than one port")
    seen = set()
    for i, p in enumerate(ports):
        if _port_key(p) in seen:
            raise _Invalid(f"spec.ports[{i}]", "FieldValueDuplicate",
                           f"Duplicate value: {{\"port\": {p['port']}, \"protocol\": \"{p['protocol']}\"}}")
        seen.add(_port_key(p))

    if typ == "ExternalName":
        _external_name(spec, ospec, old)
    else:
        _cluster_ips(alloc, txn, spec, ospec, old, otyp)
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if not ports and spec.get("clusterIP") != "None":
            raise _Invalid("spec.ports", "FieldValueRequired", "Required value")

    # Node ports.
    needs_np = typ in NODEPORT_TYPES
    auto_np = typ == "NodePort" or (typ == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True))
    if typ == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if needs_np or spec.get("externalIPs"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    old_ports = ospec.get("ports") or []
    used_in_svc = {}
    for i, p in enumerate(ports):
        np = p.get("nodePort")
        field = f"spec.ports[{i}].nodePort"
        if np in (None, 0):
            p.pop("nodePort", None)
            np = None
        if not needs_np:
            if np is not None:
                if old and any(op.get("nodePort") == np for op in old_ports):
                    p.pop("nodePort")       # left over from the old type: dropped
                    continue
                raise _Invalid(field, "FieldValueForbidden",
                               f"Forbidden: may not be used when `type` is '{typ}'")
            continue
        if np is None and old:
            match = [op for op in old_ports if _port_key(op) == _port_key(p) and op.get("nodePort")]
            if not match and p.get("name"):
                match = [op for op in old_ports if op.get("name") == p.get("name") and op.get("nodePort")]
            if match and match[0]["nodePort"] not in used_in_svc:
                np = match[0]["nodePort"]
        if np is None:
            if not auto_np:
                continue
            # Same port number on another protocol shares the node port.
            for q in ports[:i]:
                if q.get("port") == p["port"] and q.get("nodePort") and q["protocol"] != p["protocol"]:
                    np = q["nodePort"]
                    break
            if np is None:
                np = txn.any_port(field)
        else:
            if not isinstance(np, int):
                raise _Invalid(field, "FieldValueInvalid", f"Invalid value: {np!r}")
            prev = used_in_svc.get(np)
            if prev is not None and prev == p["protocol"]:
                raise _Invalid(field, "FieldValueDuplicate", f"Duplicate value: {np}")
            txn.take_port(np, field)
        used_in_svc[np] = p["protocol"]
        p["nodePort"] = np

    # Health check node port: LoadBalancer with externalTrafficPolicy Local only.
    hc = spec.get("healthCheckNodePort")
    needs_hc = typ == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
    if not needs_hc:
        if hc:
            if old and hc == ospec.get("healthCheckNodePort"):
                spec.pop("healthCheckNodePort")
            else:
                raise _Invalid("spec.healthCheckNodePort", "FieldValueForbidden",
                               "Forbidden: may only be set when `type` is 'LoadBalancer' and "
                               "`externalTrafficPolicy` is 'Local'")
        else:
            spec.pop("healthCheckNodePort", None)
    else:
        if not hc:
            hc = ospec.get("healthCheckNodePort") if old else None
        if hc:
            if hc in used_in_svc:
                raise _Invalid("spec.healthCheckNodePort", "FieldValueDuplicate", f"Duplicate value: {hc}")
            txn.take_port(hc, "spec.healthCheckNodePort")
        else:
            hc = txn.any_port("spec.healthCheckNodePort")
        spec["healthCheckNodePort"] = hc

    status = svc.get("status")
    if not isinstance(status, dict):
        svc["status"] = {"loadBalancer": {}}
    else:
        status.setdefault("loadBalancer", {})


def _external_name(spec, ospec, old):
    if not spec.get("externalName"):
        raise _Invalid("spec.externalName", "FieldValueRequired", "Required value")
    # Left over from a previous type: the real server drops these on update.
    if old and spec.get("clusterIP") and spec.get("clusterIP") == ospec.get("clusterIP"):
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if old and spec.get("clusterIPs") == ospec.get("clusterIPs"):
        spec.pop("clusterIPs", None)
    if spec.get("clusterIP") or spec.get("clusterIPs"):
        raise _Invalid("spec.clusterIP", "FieldValueForbidden",
                       "Forbidden: may not be set for ExternalName services")
    for k in ("clusterIP", "clusterIPs"):
        spec.pop(k, None)
    if old:
        for k in ("ipFamilies", "ipFamilyPolicy"):
            if spec.get(k) == ospec.get(k):
                spec.pop(k, None)


def _cluster_ips(alloc, txn, spec, ospec, old, otyp):
    cip = spec.get("clusterIP") or ""
    cips = list(spec.get("clusterIPs") or [])
    if cip and cips and cips[0] != cip:
        raise _Invalid("spec.clusterIPs", "FieldValueInvalid",
                       "Invalid value: first value must match `clusterIP`")
    if cip and not cips:
        cips = [cip]
    # Carry over from the stored object when the body leaves them out.
    if old and otyp != "ExternalName" and not cips and ospec.get("clusterIPs"):
        cips = list(ospec["clusterIPs"])
        spec.setdefault("ipFamilies", ospec.get("ipFamilies"))
        spec.setdefault("ipFamilyPolicy", ospec.get("ipFamilyPolicy"))
        if spec.get("ipFamilyPolicy") == SINGLE and len(cips) > 1:
            cips = cips[:1]
    if old and otyp != "ExternalName" and ospec.get("clusterIPs") and cips[:1] != ospec["clusterIPs"][:1]:
        raise _Invalid("spec.clusterIPs[0]", "FieldValueInvalid",
                       f"Invalid value: {cips[:1]}: may not change once set")
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in (SINGLE, PREFER, REQUIRE):
        raise _Invalid("spec.ipFamilyPolicy", "FieldValueNotSupported",
                       f"Unsupported value: \"{policy}\": supported values: \"{PREFER}\", \"{REQUIRE}\", \"{SINGLE}\"")
    fams = list(spec.get("ipFamilies") or [])
    for i, f in enumerate(fams):
        if f not in (IPV4, IPV6):
            raise _Invalid(f"spec.ipFamilies[{i}]", "FieldValueNotSupported",
                           f"Unsupported value: \"{f}\": supported values: \"IPv4\", \"IPv6\"")
    if len(fams) > 2 or len(set(fams)) != len(fams):
        raise _Invalid("spec.ipFamilies", "FieldValueDuplicate", f"Duplicate value: {fams}")

    if cips and cips[0] == "None":
        if len(cips) > 1:
            raise _Invalid("spec.clusterIPs", "FieldValueInvalid",
                           "Invalid value: must not have more than one value when the first is None")
        if not policy:
            policy = REQUIRE if len(fams) == 2 else SINGLE
        if not fams:
            fams = [alloc.families[0]]
        if policy != SINGLE and len(fams) == 1 and len(alloc.families) == 2:
            fams.append(IPV6 if fams[0] == IPV4 else IPV4)
        spec.update({"clusterIP": "None", "clusterIPs": ["None"],
                     "ipFamilies": fams, "ipFamilyPolicy": policy})
        return

    parsed = []
    for i, s in enumerate(cips):
        try:
            parsed.append(ipaddress.ip_address(s))
        except ValueError:
            raise _Invalid(f"spec.clusterIPs[{i}]", "FieldValueInvalid",
                           f"Invalid value: \"{s}\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
    given_fams = [_family(ip) for ip in parsed]
    if len(set(given_fams)) != len(given_fams):
        raise _Invalid("spec.clusterIPs", "FieldValueInvalid",
                       "Invalid value: may specify no more than one IP for each IP family")
    for i, f in enumerate(given_fams):
        if i < len(fams) and fams[i] != f:
            raise _Invalid(f"spec.ipFamilies[{i}]", "FieldValueInvalid",
                           f"Invalid value: \"{fams[i]}\": does not match the family of clusterIPs[{i}]")
    if not fams:
        fams = list(given_fams)
    if not policy:
        if len(fams) > 1:
            raise _Invalid("spec.ipFamilyPolicy", "FieldValueInvalid",
                           "Invalid value: must be RequireDualStack or PreferDualStack when multiple IP families are specified")
        policy = SINGLE
    if not fams:
        fams = [alloc.families[0]]
    if policy == SINGLE and len(fams) > 1:
        raise _Invalid("spec.ipFamilies", "FieldValueInvalid",
                       "Invalid value: when ipFamilyPolicy is SingleStack only one family may be given")
    if policy in (PREFER, REQUIRE) and len(fams) == 1 and len(alloc.families) == 2:
        fams.append(IPV6 if fams[0] == IPV4 else IPV4)
    if policy == REQUIRE and len(fams) < 2:
        raise _Invalid("spec.ipFamilyPolicy", "FieldValueInvalid",
                       "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services")
    for i, f in enumerate(fams):
        if f not in alloc.nets:
            if policy == PREFER and i > 0:
                fams = fams[:i]
                break
            raise _Invalid(f"spec.ipFamilies[{i}]", "FieldValueInvalid",
                           f"Invalid value: \"{f}\": not configured on this cluster")
    ips = []
    for i, f in enumerate(fams):
        field = f"spec.clusterIPs[{i}]"
        if i < len(parsed):
            txn.take_ip(parsed[i], field)
            ips.append(parsed[i])
        else:
            ips.append(txn.any_ip(f, field))
    strs = [str(ip) for ip in ips]
    spec.update({"clusterIP": strs[0], "clusterIPs": strs, "ipFamilies": fams, "ipFamilyPolicy": policy})
