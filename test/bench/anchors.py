#!/usr/bin/env python3
"""Generators of the rulesets kube-proxy would write for the benchmark's
Services, so that loading them (`nft -f`, `iptables-restore`) can be timed in
the same run as kproxy.  The layouts are those of kube-proxy's
pkg/proxy/nftables and pkg/proxy/iptables:

nftables mode (v1.36 layout), one transaction as kube-proxy's knftables
writes it (one command per object, chains added and flushed):
    table ip kube-proxy; base chains nat-prerouting/nat-output (dstnat) ->
    services, nat-postrouting (srcnat) -> masquerading; filter chains at
    -110 (firewall-check) and 0 (service-endpoints-check,
    nodeport-endpoints-check, cluster-ips-check); per Service port a chain
    service-<hash8>-ns/svc/tcp/port whose one rule is
    "meta l4proto tcp dnat ip to numgen random mod N map { i : ep . port }",
    reached from the @service-ips verdict map; sets cluster-ips,
    nodeport-ips, hairpin-connections (ep . ep . proto . port per endpoint).

iptables mode, one iptables-restore --noflush input (filter, then nat):
    KUBE-SERVICES: one rule per ClusterIP -> KUBE-SVC-<hash16>, ending with
    the addrtype LOCAL jump to KUBE-NODEPORTS; KUBE-SVC-*: the masquerade
    rule for sources outside the pod CIDR, then endpoint i of n with
    "-m statistic --mode random --probability 1/(n-i)" (%.10f, the last one
    unconditional) -> KUBE-SEP-<hash16>; KUBE-SEP-*: hairpin mark, DNAT.
    Above 1000 endpoints kube-proxy's "large cluster mode" drops the
    per-endpoint comments; so does this generator.  The jumps from the
    built-in chains (which kube-proxy adds with separate iptables calls) are
    part of the same input here.

The Service at `last` (default 0) is written last, so that its ClusterIP
rule is the final one of KUBE-SERVICES: the per-packet walk is longest.

    python3 anchors.py nft|iptables SERVICES [ENDPOINTS]   prints a ruleset
"""

import base64
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchapi  # noqa: E402

CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
MASQ_MARK = "0x4000"
LARGE_CLUSTER_ENDPOINTS = 1000


def _b32(text, n):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:n]


def _order(n, last):
    return [i for i in range(n) if i != last] + ([last] if 0 <= last < n else [])


def _endpoints(i, per_service, real):
    if real is not None and i in real:
        return list(real[i])
    return [benchapi.fake_endpoint(i, k, per_service) for k in range(per_service)]


# ---------------------------------------------------------------- nftables

def nft_chain_name(i):
    base = f"{benchapi.NAMESPACE}/{benchapi.service_name(i)}/tcp/http"
    return f"service-{_b32(base, 8)}-{base}"


def kube_proxy_nft(n, per_service, real=None, last=0, node_ips=("10.89.0.13",)):
    """kube-proxy's nftables-mode transaction for n Services, as text.

    real: {service index: [endpoint addresses]} replacing the fake ones."""
    t = "ip kube-proxy"
    out = [f'add table {t} {{ comment "rules for kube-proxy" ; }}']
    base_chains = [
        ("filter-prerouting-pre-dnat", "filter", "prerouting", "-110"),
        ("filter-output-pre-dnat", "filter", "output", "-110"),
        ("filter-input", "filter", "input", "0"),
        ("filter-forward", "filter", "forward", "0"),
        ("filter-output", "filter", "output", "0"),
        ("nat-prerouting", "nat", "prerouting", "-100"),
        ("nat-output", "nat", "output", "-100"),
        ("nat-postrouting", "nat", "postrouting", "100"),
    ]
    for name, kind, hook, prio in base_chains:
        out.append(f"add chain {t} {name} {{ type {kind} hook {hook} priority {prio} ; }}")
        out.append(f"flush chain {t} {name}")
    for name in ("firewall-check", "service-endpoints-check", "nodeport-endpoints-check",
                 "cluster-ips-check", "services", "masquerading", "reject-chain"):
        out.append(f"add chain {t} {name}")
        out.append(f"flush chain {t} {name}")
    out += [
        f"add rule {t} filter-prerouting-pre-dnat ct state new jump firewall-check",
        f"add rule {t} filter-output-pre-dnat ct state new jump firewall-check",
        f"add rule {t} filter-input ct state new jump nodeport-endpoints-check",
        f"add rule {t} filter-input ct state new jump service-endpoints-check",
        f"add rule {t} filter-forward ct state new jump service-endpoints-check",
        f"add rule {t} filter-forward ct state new jump cluster-ips-check",
        f"add rule {t} filter-output ct state new jump service-endpoints-check",
        f"add rule {t} filter-output ct state new jump cluster-ips-check",
        f"add rule {t} nat-prerouting jump services",
        f"add rule {t} nat-output jump services",
        f"add rule {t} nat-postrouting jump masquerading",
        f"add rule {t} reject-chain reject",
    ]
    sets = [
        ("set", "cluster-ips", "ipv4_addr", "Active ClusterIPs"),
        ("set", "nodeport-ips", "ipv4_addr", "IPs that accept NodePort traffic"),
        ("set", "hairpin-connections", "ipv4_addr . ipv4_addr . inet_proto . inet_service",
         "Connections from an endpoint to itself, to masquerade"),
        ("map", "service-ips", "ipv4_addr . inet_proto . inet_service : verdict",
         "ClusterIP, ExternalIP and LoadBalancer IP traffic"),
        ("map", "service-nodeports", "inet_proto . inet_service : verdict", "NodePort traffic"),
        ("map", "no-endpoint-services", "ipv4_addr . inet_proto . inet_service : verdict",
         "vmap to drop or reject packets to services with no endpoints"),
        ("map", "no-endpoint-nodeports", "inet_proto . inet_service : verdict",
         "vmap to drop or reject packets to service nodeports with no endpoints"),
        ("map", "firewall-ips", "ipv4_addr . inet_proto . inet_service : verdict",
         "destinations that are subject to LoadBalancerSourceRanges"),
    ]
    for kind, name, typ, comment in sets:
        out.append(f'add {kind} {t} {name} {{ type {typ} ; comment "{comment}" ; }}')
        out.append(f"flush {kind} {t} {name}")
    out += [
        f"add rule {t} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips",
        f"add rule {t} service-endpoints-check ip daddr . meta l4proto . th dport "
        f"vmap @no-endpoint-services",
        f"add rule {t} nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport "
        f"vmap @no-endpoint-nodeports",
        f'add rule {t} cluster-ips-check ip daddr @cluster-ips reject comment '
        f'"Reject traffic to invalid ports of ClusterIPs"',
        f'add rule {t} cluster-ips-check ip daddr {{ {SERVICE_CIDR} }} drop comment '
        f'"Drop traffic to unallocated ClusterIPs"',
        f"add rule {t} services ip daddr @cluster-ips ip saddr != {CLUSTER_CIDR} "
        f"meta mark set meta mark | {MASQ_MARK}",
        f"add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {t} services ip daddr @nodeport-ips meta l4proto . th dport "
        f"vmap @service-nodeports",
        f"add rule {t} masquerading meta mark & {MASQ_MARK} != 0 "
        f"meta mark set meta mark ^ {MASQ_MARK} masquerade fully-random",
        f"add rule {t} masquerading ct status dnat ip saddr . ip daddr . meta l4proto . "
        f"th dport @hairpin-connections masquerade",
    ]
    for ip in node_ips:
        out.append(f"add element {t} nodeport-ips {{ {ip} }}")
    port = benchapi.TARGET_PORT
    for i in _order(n, last):
        chain = nft_chain_name(i)
        eps = _endpoints(i, per_service, real)
        dmap = ", ".join(f"{k} : {ep} . {port}" for k, ep in enumerate(eps))
        out.append(f"add chain {t} {chain}")
        out.append(f"flush chain {t} {chain}")
        out.append(f"add rule {t} {chain} meta l4proto tcp dnat ip to numgen random mod "
                   f"{len(eps)} map {{ {dmap} }}")
        v = benchapi.vip(i)
        out.append(f"add element {t} cluster-ips {{ {v} }}")
        out.append(f"add element {t} service-ips {{ {v} . tcp . {benchapi.PORT} : goto {chain} }}")
        for ep in eps:
            out.append(f"add element {t} hairpin-connections {{ {ep} . {ep} . tcp . {port} }}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- iptables

def ipt_svc_chain(i):
    return "KUBE-SVC-" + _b32(f"{benchapi.NAMESPACE}/{benchapi.service_name(i)}:http" + "tcp", 16)


def ipt_sep_chain(i, ep):
    name = f"{benchapi.NAMESPACE}/{benchapi.service_name(i)}:http"
    return "KUBE-SEP-" + _b32(name + "tcp" + f"{ep}:{benchapi.TARGET_PORT}", 16)


def kube_proxy_iptables(n, per_service, real=None, last=0):
    """kube-proxy's iptables-mode restore input for n Services, as text."""
    order = _order(n, last)
    total = sum(len(_endpoints(i, per_service, real)) for i in order)
    large = total > LARGE_CLUSTER_ENDPOINTS
    port, tport = benchapi.PORT, benchapi.TARGET_PORT
    filt = ["*filter",
            ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            ":KUBE-NODEPORTS - [0:0]", ":KUBE-SERVICES - [0:0]",
            ":KUBE-EXTERNAL-SERVICES - [0:0]", ":KUBE-FIREWALL - [0:0]",
            ":KUBE-FORWARD - [0:0]", ":KUBE-PROXY-FIREWALL - [0:0]",
            '-A INPUT -m conntrack --ctstate NEW -m comment --comment '
            '"kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
            '-A INPUT -m comment --comment "kubernetes health check service ports" '
            '-j KUBE-NODEPORTS',
            '-A INPUT -m conntrack --ctstate NEW -m comment --comment '
            '"kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
            "-A INPUT -j KUBE-FIREWALL",
            '-A FORWARD -m conntrack --ctstate NEW -m comment --comment '
            '"kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
            '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
            '-A FORWARD -m conntrack --ctstate NEW -m comment --comment '
            '"kubernetes service portals" -j KUBE-SERVICES',
            '-A FORWARD -m conntrack --ctstate NEW -m comment --comment '
            '"kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
            '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment '
            '"kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
            '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment '
            '"kubernetes service portals" -j KUBE-SERVICES',
            "-A OUTPUT -j KUBE-FIREWALL",
            '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" '
            "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
            "-j DROP",
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
            f"-m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "COMMIT"]
    chains = [":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
              ":POSTROUTING ACCEPT [0:0]",
              ":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]",
              ":KUBE-POSTROUTING - [0:0]", ":KUBE-MARK-MASQ - [0:0]"]
    rules = ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
             '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
             '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" '
             "-j KUBE-POSTROUTING",
             f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
             f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
             '-A KUBE-POSTROUTING -m comment --comment '
             '"kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
             f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}"]
    for i in order:
        name = f"{benchapi.NAMESPACE}/{benchapi.service_name(i)}:http"
        svc = ipt_svc_chain(i)
        v = benchapi.vip(i)
        eps = _endpoints(i, per_service, real)
        chains.append(f":{svc} - [0:0]")
        rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" -m tcp -p tcp '
                     f"-d {v} --dport {port} -j {svc}")
        rules.append(f'-A {svc} -m comment --comment "{name} cluster IP" -m tcp -p tcp -d {v} '
                     f"--dport {port} ! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ")
        for k, ep in enumerate(eps):
            sep = ipt_sep_chain(i, ep)
            comment = "" if large else f'-m comment --comment "{name} -> {ep}:{tport}" '
            stat = ""
            if k < len(eps) - 1:
                stat = f"-m statistic --mode random --probability {1.0 / (len(eps) - k):.10f} "
            rules.append(f"-A {svc} {comment}{stat}-j {sep}")
        for ep in eps:
            sep = ipt_sep_chain(i, ep)
            comment = "" if large else f"-m comment --comment {name} "
            chains.append(f":{sep} - [0:0]")
            rules.append(f"-A {sep} {comment}-s {ep} -j KUBE-MARK-MASQ")
            rules.append(f"-A {sep} {comment}-m tcp -p tcp -j DNAT --to-destination {ep}:{tport}")
    rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: '
                 'this must be the last rule in this chain" -m addrtype --dst-type LOCAL '
                 "! -d 127.0.0.0/8 -j KUBE-NODEPORTS")
    return "\n".join(filt + ["*nat"] + chains + rules + ["COMMIT"]) + "\n"


def main(argv):
    if len(argv) not in (3, 4) or argv[1] not in ("nft", "iptables"):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    n = int(argv[2])
    e = int(argv[3]) if len(argv) > 3 else 10
    gen = kube_proxy_nft if argv[1] == "nft" else kube_proxy_iptables
    sys.stdout.write(gen(n, e))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
