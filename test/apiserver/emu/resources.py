"""The resource table of the emulator, its discovery documents and Table output.

Each served resource is described once here (group, version, plural, kind,
scope, short names, subresources).  From that table the module builds the
legacy discovery documents (/api, /api/v1, /apis, /apis/{group}[/{version}]),
the aggregated discovery list (apidiscovery.k8s.io/v2 and v2beta1) and the
meta.k8s.io Table answers kubectl asks for when it prints objects.
"""

import datetime

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUB_VERBS = ["get", "patch", "update"]


class Resource:
    def __init__(self, group, version, plural, kind, namespaced, short=(),
                 status=False, categories=(), singular=None, subresources=()):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.short = list(short)
        self.has_status = status
        self.categories = list(categories)
        self.singular = singular or kind.lower()
        self.subresources = (["status"] if status else []) + list(subresources)
        self.api_version = f"{group}/{version}" if group else version
        self.rkey = (group, plural)
        self.qualified = f"{plural}.{group}" if group else plural

    def __repr__(self):
        return f"<Resource {self.api_version} {self.plural}>"


R = Resource
RESOURCES = [
    R("", "v1", "configmaps", "ConfigMap", True, ["cm"]),
    R("", "v1", "endpoints", "Endpoints", True, ["ep"], singular="endpoints"),
    R("", "v1", "events", "Event", True, ["ev"]),
    R("", "v1", "namespaces", "Namespace", False, ["ns"], status=True, subresources=["finalize"]),
    R("", "v1", "nodes", "Node", False, ["no"], status=True),
    R("", "v1", "pods", "Pod", True, ["po"], status=True, categories=["all"]),
    R("", "v1", "secrets", "Secret", True),
    R("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"]),
    R("", "v1", "services", "Service", True, ["svc"], status=True, categories=["all"]),
    R("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"], status=True, categories=["all"]),
    R("apps", "v1", "deployments", "Deployment", True, ["deploy"], status=True, categories=["all"]),
    R("apps", "v1", "replicasets", "ReplicaSet", True, ["rs"], status=True, categories=["all"]),
    R("apps", "v1", "statefulsets", "StatefulSet", True, ["sts"], status=True, categories=["all"]),
    R("coordination.k8s.io", "v1", "leases", "Lease", True),
    R("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    R("events.k8s.io", "v1", "events", "Event", True, ["ev"]),
    R("networking.k8s.io", "v1", "servicecidrs", "ServiceCIDR", False, status=True),
    R("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    R("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    R("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    R("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
]
del R

BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
GROUPS = {}          # group -> [versions] in preference order
for _r in RESOURCES:
    GROUPS.setdefault(_r.group, [])
    if _r.version not in GROUPS[_r.group]:
        GROUPS[_r.group].append(_r.version)
# Group order of /apis, roughly as the real server lists them.
GROUP_ORDER = ["apps", "events.k8s.io", "rbac.authorization.k8s.io", "coordination.k8s.io",
               "discovery.k8s.io", "networking.k8s.io"]


def lookup(group, version, plural):
    return BY_PATH.get((group, version, plural))


def by_kind(group, kind):
    for r in RESOURCES:
        if r.group == group and r.kind == kind:
            return r
    return None


# ---------------------------------------------------------------- legacy discovery

def api_versions(server_address):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group_doc(group):
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in GROUPS[group]]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list():
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g) for g in GROUP_ORDER if g in GROUPS]}


def api_group(group):
    if group not in GROUPS or not group:
        return None
    doc = _group_doc(group)
    doc.update({"kind": "APIGroup", "apiVersion": "v1"})
    return doc


def api_resource_list(group, version):
    if version not in GROUPS.get(group, []):
        return None
    out = []
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": list(VERBS)}
        if r.short:
            entry["shortNames"] = list(r.short)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.subresources:
            out.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": list(SUB_VERBS)})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


# ------------------------------------------------------------ aggregated discovery

AGGREGATED_VERSIONS = ("v2", "v2beta1")


def aggregated(core, disc_version):
    """APIGroupDiscoveryList for /api (core=True) or /apis (core=False)."""
    groups = [""] if core else [g for g in GROUP_ORDER if g in GROUPS]
    items = []
    for g in groups:
        versions = []
        for v in GROUPS[g]:
            resources = []
            for r in RESOURCES:
                if r.group != g or r.version != v:
                    continue
                kind = {"group": g, "version": v, "kind": r.kind}
                entry = {"resource": r.plural, "responseKind": kind,
                         "scope": "Namespaced" if r.namespaced else "Cluster",
                         "singularResource": r.singular, "verbs": list(VERBS)}
                if r.short:
                    entry["shortNames"] = list(r.short)
                if r.categories:
                    entry["categories"] = list(r.categories)
                if r.subresources:
                    entry["subresources"] = [{"subresource": s, "responseKind": dict(kind),
                                              "verbs": list(SUB_VERBS)} for s in r.subresources]
                resources.append(entry)
            versions.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{disc_version}",
            "metadata": {}, "items": items}


# ------------------------------------------------------------------------ tables

def _age(ts, now):
    if not ts:
        return "<unknown>"
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "<unknown>"
    s = max(0, int((now - t).total_seconds()))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 730:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d"


def _col(name, typ="string", fmt="", desc="", priority=0):
    return {"name": name, "type": typ, "format": fmt, "description": desc or name, "priority": priority}


def _svc_ports(spec):
    out = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol", "TCP")
        if p.get("nodePort"):
            out.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            out.append(f"{p.get('port')}/{proto}")
    return ",".join(out) or "<none>"


def _svc_external(obj):
    spec = obj.get("spec") or {}
    typ = spec.get("type", "ClusterIP")
    if typ == "ExternalName":
        return spec.get("externalName", "<none>")
    ips = list(spec.get("externalIPs") or [])
    if typ == "LoadBalancer":
        for ing in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            ips.append(ing.get("ip") or ing.get("hostname") or "")
        if not ips:
            return "<pending>"
    return ",".join(ips) or "<none>"


def _selector(d):
    return ",".join(f"{k}={v}" for k, v in sorted((d or {}).items())) or "<none>"


def _columns(res):
    name = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
    age = _col("Age", desc="Time since the object was created.")
    if res.kind == "Service" and res.group == "":
        return [name, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), age,
                _col("Selector", priority=1)]
    if res.kind == "EndpointSlice":
        return [name, _col("AddressType"), _col("Ports"), _col("Endpoints"), age]
    if res.kind == "Namespace":
        return [name, _col("Status"), age]
    return [name, age]


def _cells(res, obj, now):
    md = obj.get("metadata") or {}
    name = md.get("name", "")
    age = _age(md.get("creationTimestamp"), now)
    if res.kind == "Service" and res.group == "":
        spec = obj.get("spec") or {}
        return [name, spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
                _svc_external(obj), _svc_ports(spec), age, _selector(spec.get("selector"))]
    if res.kind == "EndpointSlice":
        ports = ",".join(str(p.get("port", "")) for p in obj.get("ports") or []) or "<unset>"
        addrs = [a for ep in obj.get("endpoints") or [] for a in ep.get("addresses") or []]
        shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
        return [name, obj.get("addressType", ""), ports, shown or "<unset>", age]
    if res.kind == "Namespace":
        return [name, (obj.get("status") or {}).get("phase", "Active"), age]
    return [name, age]


def _row_object(obj, include):
    if include == "None":
        return None
    if include == "Metadata":
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {})}
    return obj


def table(res, objects, list_meta, include="Metadata", table_version="v1", with_columns=True):
    now = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for o in objects:
        row = {"cells": _cells(res, o, now)}
        ro = _row_object(o, include)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    t = {"kind": "Table", "apiVersion": f"meta.k8s.io/{table_version}", "metadata": list_meta,
         "columnDefinitions": _columns(res) if with_columns else None, "rows": rows}
    return t
