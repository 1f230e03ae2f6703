"""The PATCH body formats the emulator understands.

merge_patch() applies an RFC 7386 JSON merge patch.  strategic_patch() applies
a Kubernetes strategic merge patch approximately: like a merge patch, except
that lists named by a "$setElementOrder/<field>" directive are merged element
by element on their merge key, "$patch: delete|replace" and
"$deleteFromPrimitiveList/<field>" are honoured, and other "$" directives are
ignored.  json_patch() applies RFC 6902 operations (add, remove, replace,
move, copy, test).  All raise PatchError on a patch that cannot apply.
"""

import copy


class PatchError(Exception):
    pass


# ------------------------------------------------------------------ merge patch

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# -------------------------------------------------------------- strategic patch

def _merge_key(order):
    """The merge key named by a $setElementOrder list (its entries' only key)."""
    for e in order:
        if isinstance(e, dict) and len(e) == 1:
            return next(iter(e))
    return None


def _merge_list(target, patch, key, order):
    items = [copy.deepcopy(x) for x in (target or [])]
    for p in patch:
        if not isinstance(p, dict) or key not in p:
            items.append(copy.deepcopy(p))
            continue
        idx = next((i for i, x in enumerate(items) if isinstance(x, dict) and x.get(key) == p[key]), None)
        directive = p.get("$patch")
        if directive == "delete":
            if idx is not None:
                items.pop(idx)
            continue
        if directive == "replace":
            new = {k: v for k, v in p.items() if k != "$patch"}
        elif idx is not None:
            new = strategic_patch(items[idx], p)
        else:
            new = strategic_patch({}, p)
        if idx is None:
            items.append(new)
        else:
            items[idx] = new
    if order:
        wanted = [e.get(key) for e in order if isinstance(e, dict)]
        pos = {v: i for i, v in enumerate(wanted)}
        items.sort(key=lambda x: pos.get(x.get(key) if isinstance(x, dict) else None, len(pos)))
    return items


def strategic_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if patch.get("$patch") == "delete":
        return {}
    out = dict(target) if isinstance(target, dict) else {}
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if x not in (v or [])]
            continue
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and k in orders and _merge_key(orders[k]):
            out[k] = _merge_list(out.get(k), v, _merge_key(orders[k]), orders[k])
        elif isinstance(v, dict):
            out[k] = strategic_patch(out.get(k), v)
        else:
            out[k] = copy.deepcopy(v)
    for k, order in orders.items():
        if k not in patch and isinstance(out.get(k), list) and _merge_key(order):
            out[k] = _merge_list(out[k], [], _merge_key(order), order)
    return out


# ------------------------------------------------------------------- JSON patch

def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise PatchError(f"path component {p!r} does not exist")
            cur = cur[p]
        elif isinstance(cur, list):
            cur = cur[_index(cur, p, False)]
        else:
            raise PatchError(f"cannot descend into {p!r}")
    return cur


def _index(lst, p, adding):
    if adding and p == "-":
        return len(lst)
    if not p.isdigit() or (len(p) > 1 and p.startswith("0")):
        raise PatchError(f"invalid array index {p!r}")
    i = int(p)
    if i > len(lst) or (i == len(lst) and not adding):
        raise PatchError(f"array index {i} out of range")
    return i


def _add(doc, parts, value):
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc, parts):
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"cannot remove missing key {last!r}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, False))
    raise PatchError("cannot remove from a scalar")


def json_patch(target, ops):
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind, parts = op["op"], _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {kind} needs a value")
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            if not parts:
                doc = copy.deepcopy(op["value"])
            else:
                _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchError(f"operation {kind} needs from")
            src = _pointer(op["from"])
            value = _remove(doc, src) if kind == "move" else copy.deepcopy(_walk(doc, src))
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _walk(doc, parts) != op["value"]:
                raise PatchError(f"test failed at {op['path']}")
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc
