"""Label and field selectors, parsed the way the real API server parses them.

parse_labels() turns a labelSelector string (k=v, k==v, k!=v, k in (a,b),
k notin (a,b), k, !k, k>n, k<n; commas join requirements) into a predicate
over an object; parse_fields() does the same for a fieldSelector (=, ==, !=
on the fields the resource supports).  Both raise ApiError 400 on bad input.
"""

from .errors import bad_request


# ---------------------------------------------------------------- label selectors

_SPECIAL = set("!=,()<> \t")


def _tokens(s):
    """Split a label selector into (kind, text) tokens."""
    out = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in " \t":
            i += 1
        elif s.startswith("==", i):
            out.append(("op", "==")); i += 2
        elif s.startswith("!=", i):
            out.append(("op", "!=")); i += 2
        elif c in "=<>":
            out.append(("op", c)); i += 1
        elif c == "!":
            out.append(("not", "!")); i += 1
        elif c in ",()":
            out.append((c, c)); i += 1
        else:
            j = i
            while j < n and s[j] not in _SPECIAL:
                j += 1
            word = s[i:j]
            out.append(("in", word) if word in ("in", "notin") else ("id", word))
            i = j
    return out


def _check_key(key, sel):
    if not key or len(key) > 316 or key.count("/") > 1:
        raise bad_request(f'unable to parse requirement: invalid label key "{key}" in "{sel}"')


def parse_labels(sel):
    """Return a predicate labels-dict -> bool; None for an empty selector."""
    if sel is None or not sel.strip():
        return None
    toks = _tokens(sel)
    reqs = []
    i = 0

    def err(msg):
        raise bad_request(f'unable to parse requirement: {msg} in selector "{sel}"')

    def peek(k=0):
        return toks[i + k] if i + k < len(toks) else (None, None)

    while i < len(toks):
        kind, text = peek()
        if kind == "not":
            i += 1
            kind, key = peek()
            if kind != "id":
                err("expected a label key after '!'")
            _check_key(key, sel)
            reqs.append((key, "!", None))
            i += 1
        elif kind == "id":
            key = text
            _check_key(key, sel)
            i += 1
            kind, op = peek()
            if kind in (None, ","):
                reqs.append((key, "exists", None))
            elif kind == "op":
                i += 1
                kind, val = peek()
                if kind == "id":
                    i += 1
                elif kind in (None, ","):
                    val = ""        # "k=" selects an empty value
                else:
                    err(f"unexpected '{val}' after '{op}'")
                if op in ("<", ">"):
                    try:
                        val = int(val)
                    except ValueError:
                        err(f"for '{op}', the value must be an integer")
                reqs.append((key, op, val))
            elif kind == "in":
                i += 1
                if peek()[0] != "(":
                    err(f"expected '(' after '{op}'")
                i += 1
                vals = set()
                while True:
                    kind, val = peek()
                    if kind == "id":
                        vals.add(val); i += 1
                        kind, _ = peek()
                    elif kind in (",", ")"):
                        vals.add("")
                    else:
                        err("unterminated value set")
                    if kind == ",":
                        i += 1
                        continue
                    if kind == ")":
                        i += 1
                        break
                    err("expected ',' or ')' in value set")
                reqs.append((key, op, vals))
            else:
                err(f"unexpected '{op}' after key '{key}'")
        else:
            err(f"unexpected '{text}'")
        kind, _ = peek()
        if kind == ",":
            i += 1
            if peek()[0] is None:
                err("trailing ','")
        elif kind is not None:
            err(f"expected ',' but found '{peek()[1]}'")

    def match(labels):
        labels = labels or {}
        for key, op, val in reqs:
            has = key in labels
            v = labels.get(key)
            if op == "exists":
                ok = has
            elif op == "!":
                ok = not has
            elif op in ("=", "=="):
                ok = has and v == val
            elif op == "!=":
                ok = not has or v != val
            elif op == "in":
                ok = has and v in val
            elif op == "notin":
                ok = not has or v not in val
            else:
                try:
                    n = int(v) if has else None
                except (TypeError, ValueError):
                    n = None
                ok = n is not None and (n > val if op == ">" else n < val)
            if not ok:
                return False
        return True

    return match


# ---------------------------------------------------------------- field selectors

def _path(*keys):
    def get(obj):
        cur = obj
        for k in keys:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(k)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)
    return get


_COMMON = {"metadata.name": _path("metadata", "name"),
           "metadata.namespace": _path("metadata", "namespace")}

_EXTRA = {
    ("", "pods"): ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                   "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                   "status.podIP", "status.nominatedNodeName"],
    ("", "services"): ["spec.clusterIP", "spec.type"],
    ("", "nodes"): ["spec.unschedulable"],
    ("", "namespaces"): ["status.phase"],
    ("", "secrets"): ["type"],
    ("", "events"): ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion",
                     "involvedObject.resourceVersion", "involvedObject.fieldPath",
                     "reason", "reportingComponent", "source", "type"],
    ("apps", "replicasets"): ["status.replicas"],
}


def _fields_of(rkey):
    f = dict(_COMMON)
    for name in _EXTRA.get(rkey, []):
        f[name] = _path(*name.split("."))
    if rkey == ("", "events"):
        f["source"] = _path("source", "component")
    return f


def _split_unescaped(s, sep):
    parts, cur, i = [], [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2]); i += 2
            continue
        if c == sep:
            parts.append("".join(cur)); cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append(s[i + 1]); i += 2
        else:
            out.append(s[i]); i += 1
    return "".join(out)


def parse_fields(sel, rkey):
    """Return a predicate object -> bool; None for an empty selector."""
    if sel is None or not sel.strip():
        return None
    fields = _fields_of(rkey)
    terms = []
    for part in _split_unescaped(sel, ","):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            idx = _find_unescaped(part, op)
            if idx >= 0:
                field, value = part[:idx].strip(), _unescape(part[idx + len(op):])
                break
        else:
            raise bad_request(f'invalid selector: \'{sel}\'; can\'t understand \'{part}\'')
        if field not in fields:
            raise bad_request(f'field label not supported: {field}')
        terms.append((fields[field], op == "!=", value))

    def match(obj):
        for get, negate, value in terms:
            if (get(obj) == value) == negate:
                return False
        return True

    return match


def _find_unescaped(s, op):
    i = 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s.startswith(op, i):
            # "!=" must not be read as "=" preceded by "!"
            if op == "=" and i > 0 and s[i - 1] in "!=":
                i += 1
                continue
            if op == "=" and s.startswith("==", i):
                i += 2
                continue
            return i
        i += 1
    return -1
