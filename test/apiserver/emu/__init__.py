"""The pieces of kproxy's Kubernetes API server emulator (test/apiserver/apiserver.py).

The emulator stands in for kube-apiserver in kproxy's tests: it stores objects
in memory, versions every change with one global resourceVersion, serves list
and watch the way the real server does, and can be told to misbehave.  The
modules are: errors (Status objects), store (objects, versions, event history),
selectors (label and field selectors), patch (merge, strategic and JSON
patches), resources (the resource table, discovery and Table output),
services (Service defaulting and IP/port allocation), api (the verbs: get,
list, create, replace, patch, delete), faults (injected request failures)
and server (HTTP handling, auth, routing, watch streams, fault endpoint).
"""
