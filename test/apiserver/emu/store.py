"""In-memory storage, resourceVersions and the event history of the emulator.

All objects live in one Store guarded by one condition variable.  Every change
takes the next value of a single global counter as its resourceVersion and is
appended to a bounded event history (type, object, previous object).  The
history serves watches that start from an older version, replays selector
transitions, and rebuilds the state at an older version for paginated lists
(continue tokens).  Versions older than the oldest kept event are "compacted":
asking for them yields 410 Expired, as with the real server's etcd.
"""

import collections
import itertools
import json
import threading

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


def clone(obj):
    """Deep copy of a JSON value (faster than copy.deepcopy for this data)."""
    return json.loads(json.dumps(obj))


class Event:
    __slots__ = ("rv", "rkey", "key", "type", "obj", "prev")

    def __init__(self, rv, rkey, key, etype, obj, prev):
        self.rv = rv
        self.rkey = rkey      # (group, plural)
        self.key = key        # (namespace, name)
        self.type = etype
        self.obj = obj        # the object after the change (for DELETED: the last state)
        self.prev = prev      # the object before the change, None when created


class Store:
    def __init__(self, history=10000):
        self.cond = threading.Condition(threading.RLock())
        self.rv = 0
        self.data = {}                    # rkey -> {(ns, name): object}
        self.log = collections.deque()    # events, consecutive rvs compacted+1 .. rv
        self.history = max(1, int(history))
        self.compacted = 0                # events up to this rv are forgotten
        self.watchers = set()
        self.stopping = False

    # All methods below expect the caller to hold self.cond.

    def table(self, rkey):
        t = self.data.get(rkey)
        if t is None:
            t = self.data[rkey] = {}
        return t

    def get(self, rkey, key):
        return self.data.get(rkey, {}).get(key)

    def commit(self, rkey, key, obj, etype):
        """Store obj (or delete key when etype is DELETED); return the stored object.

        The stored object must not be changed afterwards: events share it."""
        t = self.table(rkey)
        prev = t.get(key)
        self.rv += 1
        if etype == DELETED:
            obj = clone(prev)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            del t[key]
        else:
            obj["metadata"]["resourceVersion"] = str(self.rv)
            t[key] = obj
        self.log.append(Event(self.rv, rkey, key, etype, obj, prev))
        while len(self.log) > self.history:
            self.compacted = self.log.popleft().rv
        self.cond.notify_all()
        return obj

    def expire(self):
        """Forget the whole history: every older version becomes too old."""
        self.log.clear()
        self.compacted = self.rv

    def too_old(self, rv):
        return rv < self.compacted

    def events_after(self, rv):
        """Events with a version above rv, oldest first (rv must not be too old)."""
        if rv >= self.rv:
            return []
        start = max(0, rv - self.compacted)
        return list(itertools.islice(self.log, start, None))

    def snapshot(self, rkey, rv):
        """The objects of rkey as they were at version rv: {(ns, name): object}."""
        cur = dict(self.data.get(rkey, {}))
        if rv >= self.rv:
            return cur
        for ev in reversed(self.events_after(rv)):
            if ev.rkey != rkey:
                continue
            if ev.prev is None:
                cur.pop(ev.key, None)
            else:
                cur[ev.key] = ev.prev
        return cur

    def stop(self):
        self.stopping = True
        self.cond.notify_all()
