"""The verbs of the emulated API: get, list, create, replace, patch and delete.

Api works on the Store and knows the rules the real server applies to writes:
metadata (uid, resourceVersion, creationTimestamp, generation, apiVersion and
kind), namespace checks, generateName, optimistic concurrency on
resourceVersion, status subresources, Service defaulting and allocation,
namespace cascade deletion, and paginated lists with continue tokens that
read a consistent snapshot.  Watch streams live in server.py; they use the
matcher built here.
"""

import base64
import datetime
import json
import random
import uuid

from . import errors, patch, services
from .errors import ApiError, bad_request
from .resources import lookup
from .selectors import parse_fields, parse_labels
from .store import ADDED, DELETED, MODIFIED, clone

NAMESPACES = lookup("", "v1", "namespaces")
SERVICES = lookup("", "v1", "services")
SERVICECIDRS = lookup("networking.k8s.io", "v1", "servicecidrs")
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_kind(res):
    return res.kind + "List"


class Matcher:
    """Namespace, label and field filters of one list or watch request."""

    def __init__(self, res, ns, params):
        self.ns = ns
        self.labels = parse_labels(params.get("labelSelector"))
        self.fields = parse_fields(params.get("fieldSelector"), res.rkey)

    def key_ok(self, key):
        return self.ns is None or key[0] == self.ns

    def __call__(self, obj):
        if obj is None:
            return False
        if self.ns is not None and (obj.get("metadata") or {}).get("namespace") != self.ns:
            return False
        if self.fields and not self.fields(obj):
            return False
        if self.labels and not self.labels((obj.get("metadata") or {}).get("labels")):
            return False
        return True


def _int_param(params, name, default=None):
    v = params.get(name)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {v!r}") from None


def encode_continue(rv, key):
    raw = json.dumps({"v": "emu/1", "rv": rv, "start": list(key)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        if d.get("v") != "emu/1":
            raise ValueError
        return int(d["rv"]), tuple(d["start"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("continue key is not valid: invalid continue token") from None


class Api:
    def __init__(self, store, alloc):
        self.store = store
        self.alloc = alloc

    # ------------------------------------------------------------ bootstrapping

    def bootstrap(self):
        """Objects a fresh cluster has: the usual namespaces and the default ServiceCIDR."""
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(NAMESPACES, None, {"metadata": {"name": ns}}, {})
        cidrs = [str(self.alloc.nets[f]) for f in self.alloc.families]
        self.create(SERVICECIDRS, None, {
            "metadata": {"name": "kubernetes"}, "spec": {"cidrs": cidrs},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "",
                                       "message": "Kubernetes Service CIDR is ready",
                                       "lastTransitionTime": now_rfc3339()}]}}, {})

    # ------------------------------------------------------------------ helpers

    def _check_body(self, res, ns, body):
        if not isinstance(body, dict):
            raise bad_request(f"the body of the request must be a JSON object, not {type(body).__name__}")
        md = body.get("metadata")
        if md is None:
            md = body["metadata"] = {}
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        av, kind = body.get("apiVersion"), body.get("kind")
        if av and av != res.api_version:
            raise bad_request(f"the API version in the data ({av}) does not match the expected API version ({res.api_version})")
        if kind and kind != res.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({res.kind})")
        if res.namespaced:
            bns = md.get("namespace")
            if bns and bns != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        for k in ("selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            md.pop(k, None)
        # kind and apiVersion first, as the real server writes them.
        obj = {"kind": res.kind, "apiVersion": res.api_version}
        obj.update((k, v) for k, v in body.items() if k not in ("kind", "apiVersion"))
        return obj, md

    @staticmethod
    def _valid_name(res, name):
        if not isinstance(name, str) or not name:
            return False
        return name not in (".", "..") and "/" not in name and "%" not in name and len(name) <= 253

    @staticmethod
    def _spec_part(obj):
        return {k: v for k, v in obj.items() if k not in ("metadata", "status")}

    def _namespace_defaults(self, obj):
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        spec.setdefault("finalizers", ["kubernetes"])
        st = obj.get("status")
        if not isinstance(st, dict):
            st = obj["status"] = {}
        st.setdefault("phase", "Active")

    # ---------------------------------------------------------------- reading

    def get(self, res, ns, name):
        with self.store.cond:
            obj = self.store.get(res.rkey, (ns or "", name))
        if obj is None:
            raise errors.not_found(res, name)
        return obj

    def list(self, res, ns, params):
        match = Matcher(res, ns, params)
        limit = _int_param(params, "limit", 0)
        cont = params.get("continue") or ""
        rv_param = params.get("resourceVersion") or ""
        rv_match = params.get("resourceVersionMatch") or ""
        if rv_match and rv_match not in ("Exact", "NotOlderThan"):
            raise bad_request(f"resourceVersionMatch: unsupported value {rv_match!r}")
        if rv_match and not rv_param:
            raise bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
        start = None
        st = self.store
        with st.cond:
            if cont:
                if rv_param and rv_param != "0":
                    raise bad_request("specifying resource version is not allowed when using continue")
                rv, start = decode_continue(cont)
                if st.too_old(rv):
                    raise errors.expired(
                        "The provided continue parameter is too old to display a consistent list "
                        "result. Start a new list without the continue parameter.")
                objs = st.snapshot(res.rkey, rv)
            else:
                want = _int_param(params, "resourceVersion", 0)
                if want > st.rv:
                    raise ApiError(504, "Timeout", f"Too large resource version: {want}, current: {st.rv}",
                                   {"causes": [{"reason": "ResourceVersionTooLarge",
                                                "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1})
                if rv_match == "Exact" and want:
                    if st.too_old(want):
                        raise errors.expired(f"too old resource version: {want} ({st.compacted})")
                    rv, objs = want, st.snapshot(res.rkey, want)
                else:
                    rv, objs = st.rv, dict(st.data.get(res.rkey, {}))
        keys = sorted(k for k in objs if match.key_ok(k) and (start is None or k > start))
        items = [objs[k] for k in keys if match(objs[k])]
        meta = {"resourceVersion": str(rv)}
        if limit and limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = encode_continue(rv, (last.get("namespace", ""), last["name"]))
            if not match.labels and not match.fields:
                meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return meta, items

    # ---------------------------------------------------------------- writing

    def create(self, res, ns, body, params):
        dry = bool(params.get("dryRun"))
        body, md = self._check_body(res, ns, body)
        if res.namespaced and not ns:
            raise errors.method_not_allowed("POST")
        st = self.store
        with st.cond:
            name = md.get("name")
            if not name:
                gen = md.get("generateName")
                if not gen:
                    raise errors.invalid(res, "", [("metadata.name", "FieldValueRequired",
                                                    "Required value: name or generateName is required")])
                for _ in range(100):
                    name = gen + "".join(random.choice(NAME_CHARS) for _ in range(5))
                    if st.get(res.rkey, (ns or "", name)) is None:
                        break
                md["name"] = name
            if not self._valid_name(res, name):
                raise errors.invalid(res, str(name), [("metadata.name", "FieldValueInvalid",
                                                       f"Invalid value: {name!r}: not a valid name")])
            key = (ns or "", name)
            if st.get(res.rkey, key) is not None:
                raise errors.already_exists(res, name)
            md.pop("resourceVersion", None)
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_rfc3339()
            md["generation"] = 1
            done = abort = None
            if res is SERVICES:
                done, abort = services.prepare(self.alloc, res, body, None)
            elif res is NAMESPACES:
                self._namespace_defaults(body)
            if dry:
                if abort:
                    abort()
                return body
            obj = st.commit(res.rkey, key, body, ADDED)
            if done:
                done()
            return obj

    def _update(self, res, ns, name, body, sub, old, dry):
        """Replace old with body (the lock is held); return the stored object."""
        body, md = self._check_body(res, ns, body)
        bname = md.get("name")
        if bname and bname != name:
            raise bad_request(f"the name of the object ({bname}) does not match the name on the URL ({name})")
        md["name"] = name
        omd = old["metadata"]
        brv = md.get("resourceVersion")
        if brv and brv != omd.get("resourceVersion"):
            raise errors.conflict(res, name)
        buid = md.get("uid")
        if buid and buid != omd.get("uid"):
            raise errors.conflict(res, name, f"Precondition failed: UID in precondition: {buid}, UID in object meta: {omd.get('uid')}")
        if sub == "status":
            new = clone(old)
            if "status" in body:
                new["status"] = body["status"]
            else:
                new.pop("status", None)
        else:
            new = body
            for k in ("uid", "creationTimestamp", "generation"):
                if k in omd:
                    md[k] = omd[k]
                else:
                    md.pop(k, None)
            if res.has_status and sub is None:
                if "status" in old:
                    new["status"] = clone(old["status"])
                else:
                    new.pop("status", None)
        new["metadata"]["resourceVersion"] = omd.get("resourceVersion")
        done = abort = None
        if res is SERVICES and sub is None:
            done, abort = services.prepare(self.alloc, res, new, old)
        elif res is NAMESPACES:
            self._namespace_defaults(new)
        if self._spec_part(new) != self._spec_part(old):
            new["metadata"]["generation"] = int(omd.get("generation") or 0) + 1
        if new == old or dry:
            if abort:
                abort()
            return old if new == old else new
        obj = self.store.commit(res.rkey, (ns or "", name), new, MODIFIED)
        if done:
            done()
        return obj

    def replace(self, res, ns, name, body, sub, params):
        with self.store.cond:
            old = self.store.get(res.rkey, (ns or "", name))
            if old is None:
                raise errors.not_found(res, name)
            return self._update(res, ns, name, body, sub, old, bool(params.get("dryRun")))

    def patch(self, res, ns, name, body, ctype, sub, params):
        ctype = (ctype or "").split(";")[0].strip().lower()
        try:
            doc = json.loads(body or b"null")
        except ValueError as e:
            if ctype == "application/apply-patch+yaml":
                raise errors.unsupported_media(ctype + " (only its JSON form is understood)") from None
            raise bad_request(f"error decoding patch: {e}") from None
        with self.store.cond:
            old = self.store.get(res.rkey, (ns or "", name))
            if old is None:
                if ctype == "application/apply-patch+yaml" and sub is None:
                    if isinstance(doc, dict):
                        doc.setdefault("metadata", {}).setdefault("name", name)
                    return 201, self.create(res, ns, doc, params)
                raise errors.not_found(res, name)
            try:
                if ctype == "application/json-patch+json":
                    new = patch.json_patch(old, doc)
                elif ctype in ("application/merge-patch+json", "application/apply-patch+yaml"):
                    if not isinstance(doc, dict):
                        raise patch.PatchError("a merge patch must be a JSON object")
                    new = patch.merge_patch(old, doc)
                elif ctype == "application/strategic-merge-patch+json":
                    if not isinstance(doc, dict):
                        raise patch.PatchError("a strategic merge patch must be a JSON object")
                    new = patch.strategic_patch(old, doc)
                else:
                    raise errors.unsupported_media(ctype)
            except patch.PatchError as e:
                raise errors.ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {e}") from None
            if not isinstance(new, dict):
                raise bad_request("the patch did not produce an object")
            new = clone(new)
            # A patch that does not mention resourceVersion must not conflict.
            nmd = new.get("metadata")
            if isinstance(nmd, dict) and nmd.get("resourceVersion") == old["metadata"].get("resourceVersion"):
                nmd.pop("resourceVersion")
            return 200, self._update(res, ns, name, new, sub, old, bool(params.get("dryRun")))

    def delete(self, res, ns, name, body, params):
        opts = {}
        if body:
            try:
                opts = json.loads(body)
            except ValueError:
                raise bad_request("DeleteOptions body is not valid JSON") from None
            if not isinstance(opts, dict):
                opts = {}
        pre = opts.get("preconditions") or {}
        st = self.store
        with st.cond:
            key = (ns or "", name)
            old = st.get(res.rkey, key)
            if old is None:
                raise errors.not_found(res, name)
            omd = old["metadata"]
            if pre.get("uid") and pre["uid"] != omd.get("uid"):
                raise errors.conflict(res, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {omd.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != omd.get("resourceVersion"):
                raise errors.conflict(res, name, f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion in object meta: {omd.get('resourceVersion')}")
            if params.get("dryRun"):
                return old
            return self._delete_locked(res, key, old)

    def _delete_locked(self, res, key, old):
        st = self.store
        if res is NAMESPACES:
            ns = key[1]
            for rkey, table in list(st.data.items()):
                for k in [k for k in table if k[0] == ns]:
                    gone = table[k]
                    st.commit(rkey, k, None, DELETED)
                    if rkey == SERVICES.rkey:
                        self.alloc.release(gone)
        obj = st.commit(res.rkey, key, None, DELETED)
        if res is SERVICES:
            self.alloc.release(old)
        return obj

    def delete_collection(self, res, ns, params):
        match = Matcher(res, ns, params)
        st = self.store
        out = []
        with st.cond:
            table = st.data.get(res.rkey, {})
            for key in sorted(k for k in table if match.key_ok(k)):
                obj = table.get(key)
                if obj is not None and match(obj):
                    if params.get("dryRun"):
                        out.append(obj)
                    else:
                        out.append(self._delete_locked(res, key, obj))
            rv = st.rv
        return {"kind": list_kind(res), "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(rv)}, "items": out}
