"""A small test runner shared by the Python suites (emulator, e2e, bench checks).

A suite is one or more modules whose functions named ``test_*`` are the tests.
Each test runs in order, under a per-test time limit, and prints one line:
``PASS name (1.2s)``, ``FAIL name (...)`` with the reason, or ``SKIP name``.
The run ends with the line ``N passed, N failed, N skipped`` that the
top-level test driver adds up.  A module may define ``setup_module()`` and
``teardown_module()``; teardown always runs, even after a failure or an
interrupt, so that nothing the tests created is left on the machine.
"""

import argparse
import importlib.util
import os
import signal
import sys
import time
import traceback


class Skip(Exception):
    """Raised by a test that cannot run here; it is counted as skipped."""


class TestTimeout(Exception):
    pass


def skip(reason):
    raise Skip(reason)


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


def _load(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _tests_of(mod):
    tests = []
    for name, obj in vars(mod).items():
        if name.startswith("test_") and callable(obj):
            code = getattr(obj, "__code__", None)
            line = code.co_firstlineno if code else 0
            tests.append((line, name, obj))
    tests.sort()
    return [(n, f) for _, n, f in tests]


def run(paths, pattern=None, timeout=120, label=None):
    passed = failed = skipped = 0
    failures = []
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    for path in paths:
        mod = _load(path)
        tests = [(n, f) for n, f in _tests_of(mod) if not pattern or pattern in n]
        if not tests:
            continue
        setup = getattr(mod, "setup_module", None)
        teardown = getattr(mod, "teardown_module", None)
        try:
            if setup:
                try:
                    signal.alarm(timeout)
                    setup()
                    signal.alarm(0)
                except Skip as e:
                    signal.alarm(0)
                    for n, _ in tests:
                        print(f"SKIP {n} ({e})", flush=True)
                        skipped += 1
                    continue
                except Exception:
                    signal.alarm(0)
                    reason = traceback.format_exc().rstrip()
                    for n, _ in tests:
                        print(f"FAIL {n} (module set-up failed)", flush=True)
                        failed += 1
                        failures.append((n, reason))
                    continue
            for name, fn in tests:
                shown = f"{name}[{label}]" if label else name
                t0 = time.monotonic()
                try:
                    signal.alarm(timeout)
                    fn()
                    signal.alarm(0)
                    print(f"PASS {shown} ({time.monotonic() - t0:.1f}s)", flush=True)
                    passed += 1
                except Skip as e:
                    signal.alarm(0)
                    print(f"SKIP {shown} ({e})", flush=True)
                    skipped += 1
                except KeyboardInterrupt:
                    signal.alarm(0)
                    raise
                except BaseException:
                    signal.alarm(0)
                    reason = traceback.format_exc().rstrip()
                    print(f"FAIL {shown} ({time.monotonic() - t0:.1f}s)", flush=True)
                    print("    " + reason.replace("\n", "\n    "), flush=True)
                    failed += 1
                    failures.append((shown, reason))
        finally:
            signal.alarm(0)
            if teardown:
                try:
                    teardown()
                except Exception:
                    print("teardown failed:\n" + traceback.format_exc(), flush=True)
    if failures:
        print("\nFailed: " + ", ".join(n for n, _ in failures), flush=True)
    print(f"{passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


def main(argv=None):
    # Test modules import this file as "harness"; make that name this
    # module, so their Skip is the one caught here.
    sys.modules.setdefault("harness", sys.modules[__name__])
    ap = argparse.ArgumentParser(description="run test_* functions of the given modules")
    ap.add_argument("paths", nargs="+")
    ap.add_argument("-k", dest="pattern", default=os.environ.get("TEST_FILTER"),
                    help="run only tests whose name contains this")
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("TEST_TIMEOUT", "120")))
    ap.add_argument("--label", default=None, help="shown after each test name, e.g. the mode")
    args = ap.parse_args(argv)
    try:
        return run(args.paths, args.pattern, args.timeout, args.label)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
