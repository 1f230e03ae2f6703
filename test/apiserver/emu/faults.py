"""Injected request faults: error answers and delays for the next N requests.

Tests post {"action":"error",...} or {"action":"delay",...} to
/emulator/faults; each becomes a pending fault with a count, an optional path
prefix and an optional method.  Every API request (never /emulator/ ones)
consumes the faults it matches: it is delayed by the sum of matching delays
and answered with the first matching error.  Faults that act on open watch
streams (drop, garbage, truncate, huge-line) are handled by the server.
"""

import threading


class Fault:
    def __init__(self, kind, spec):
        self.kind = kind
        self.count = int(spec.get("count", 1))
        self.path = spec.get("path") or "/"
        self.method = (spec.get("method") or "").upper() or None
        self.status = int(spec.get("status", 500))
        self.retry_after = spec.get("retryAfter")
        self.seconds = float(spec.get("seconds", 1))
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.seconds < 0:
            raise ValueError("seconds must not be negative")

    def matches(self, method, path):
        return path.startswith(self.path) and (self.method is None or self.method == method)


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.pending = []

    def add(self, kind, spec):
        f = Fault(kind, spec)
        with self.lock:
            self.pending.append(f)

    def reset(self):
        with self.lock:
            self.pending.clear()

    def take(self, method, path):
        """Return (delay_seconds, error_fault_or_None) for one request."""
        delay, error = 0.0, None
        with self.lock:
            for f in list(self.pending):
                if not f.matches(method, path):
                    continue
                if f.kind == "error":
                    if error is not None:
                        continue
                    error = f
                else:
                    delay += f.seconds
                f.count -= 1
                if f.count <= 0:
                    self.pending.remove(f)
        return delay, error

    def describe(self):
        with self.lock:
            return [{"action": f.kind, "count": f.count, "path": f.path, "method": f.method,
                     "status": f.status, "seconds": f.seconds} for f in self.pending]
