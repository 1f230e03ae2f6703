"""`make demo`: kproxy serving every kind of Service in a sandbox cluster.

Builds a two-node cluster of network namespaces with pods on both nodes and
an outside client, runs the API server emulator and one kproxy agent per
node, creates a ClusterIP, a NodePort, a LoadBalancer and an externalIP
Service, sends real traffic to each, and prints what answered.  It then
keeps running until Ctrl-C (or exits at once with DEMO_ONESHOT=1) and
removes everything it made.

    DEMO_MODE=nftables   the dataplane (nftables is the default)
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import sandbox  # noqa: E402
from cluster import Cluster, endpoint_slice, service  # noqa: E402

MODE = os.environ.get("DEMO_MODE", "nftables")
ONESHOT = os.environ.get("DEMO_ONESHOT", "") not in ("", "0")

PODS = [("web-a", "node1"), ("web-b", "node2"), ("web-c", "node2")]


def say(msg):
    print(msg, flush=True)


def main():
    say(f"kproxy demo: a two-node sandbox cluster, {MODE} dataplane")
    t0 = time.monotonic()
    with Cluster(mode=MODE) as c:
        for name, node in PODS:
            c.add_pod(name, node, ports={"tcp": [8080], "udp": [8081]})
        c.add_pod("client-pod", "node1")
        for node in c.sb.nodes:
            c.start_agent(node)
        say(f"  cluster up, agents synced in {time.monotonic() - t0:.1f}s "
            f"(API emulator at https://{sandbox.API_ADDR}:6443)")

        eps = [c.pod_endpoint(n) for n, _ in PODS]
        ports = [("http", "TCP", 80, 8080), ("dns", "UDP", 53, 8081)]
        sl_ports = [("http", "TCP", 8080), ("dns", "UDP", 8081)]
        lb_ip, ext_ip = "10.90.0.10", "10.90.0.20"
        c.create(
            service("web-clusterip", ports, cluster_ip="10.96.0.10"),
            service("web-nodeport", [("http", "TCP", 80, 8080, 30080),
                                     ("dns", "UDP", 53, 8081, 30053)],
                    cluster_ip="10.96.0.11", type="NodePort"),
            service("web-lb", ports, cluster_ip="10.96.0.12", type="LoadBalancer"),
            service("web-external", ports, cluster_ip="10.96.0.13", externalIPs=[ext_ip]))
        for svc in ("web-clusterip", "web-nodeport", "web-lb", "web-external"):
            c.create(endpoint_slice(svc, eps, sl_ports))
        # What a cloud load balancer controller would do: publish the ingress IP.
        c.kubectl("patch", "service", "web-lb", "--subresource=status", "--type=merge", "-p",
                  json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}}))
        # The outside client reaches LB and external IPs through node1.
        c.sb.route("client", "10.90.0.0/24", via_node="node1")

        rows = [
            ("web-clusterip", "ClusterIP", "pod-client-pod", "10.96.0.10", 80, 53),
            ("web-clusterip", "ClusterIP", "node2", "10.96.0.10", 80, 53),
            ("web-nodeport", "NodePort", "client", c.sb.node_ip("node1"), 30080, 30053),
            ("web-nodeport", "NodePort", "client", c.sb.node_ip("node2"), 30080, 30053),
            ("web-lb", "LoadBalancer", "client", lb_ip, 80, 53),
            ("web-external", "externalIP", "client", ext_ip, 80, 53),
        ]
        c.sb.wait_for("client", "tcp", lb_ip, 80, timeout=10)
        say("")
        header = (f"{'service':<14} {'type':<12} {'client':<10} {'address':<16} "
                  f"{'endpoints':<22} {'TCP answers (seen client)':<40} {'UDP answers'}")
        say(header)
        say("-" * len(header))
        ok = True
        for svc, kind, src, addr, tport, uport in rows:
            tr = c.sb.probe(src, "tcp", addr, tport, count=12)
            ur = c.sb.probe(src, "udp", addr, uport, count=12)
            ok &= tr.ok and ur.ok
            tnames = ",".join(sorted(set(tr.names))) or tr.first_error or "none"
            seen = ",".join(sorted(set(x.client_ip for x in tr.replies))) or "-"
            unames = ",".join(sorted(set(ur.names))) or ur.first_error or "none"
            who = src.replace("pod-", "")
            say(f"{svc:<14} {kind:<12} {who:<10} {addr + ':' + str(tport):<16} "
                f"{','.join(n for n, _ in PODS):<22} {tnames + ' (' + seen + ')':<40} {unames}")
        say("")
        say("Every request above was a real packet through kproxy's rules; the pods answer with "
            "their name and the client address they saw.")
        if not ok:
            say("Some requests failed; agent logs:")
            for node in c.sb.nodes:
                say(c.agent_log(node))
        if not ONESHOT and ok:
            say("\nThe cluster stays up; try for example:\n"
                f"  python3 test/lib/sandbox.py exec {c.sb.prefix} node1 -- nft list ruleset\n"
                f"  python3 test/lib/sandbox.py exec {c.sb.prefix} client -- build/test/probe "
                f"tcp {lb_ip} 80\n"
                "Press Ctrl-C to stop and clean up.")
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        say("cleaning up")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
