# SPDX-License-Identifier: Apache-2.0
"""Runs the integration tests (tests/integration/test_*.py, or the modules named on the command
line) with unittest and ends with one line "N passed, N failed, N skipped"."""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.stream.write("  (%.2fs)" % (time.time() - self._t0))


def main():
    loader = unittest.TestLoader()
    names = sys.argv[1:]
    if names:
        suite = unittest.TestSuite(loader.loadTestsFromName(n) for n in names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result, stream=sys.stdout)
    r = runner.run(suite)
    failed = len(r.failures) + len(r.errors) + len(r.unexpectedSuccesses)
    # A run that promised Ceph or root (make check) fails the tests that skipped for want of it.
    import lib  # noqa: E402 (after the suite: lib needs the generated stubs)
    required = {reason for var, reason in (("RBDCSI_REQUIRE_CEPH", lib.SKIP_NO_CEPH),
                                           ("RBDCSI_REQUIRE_ROOT", lib.SKIP_NO_ROOT))
                if os.environ.get(var) == "1"}
    for test, reason in [s for s in r.skipped if s[1] in required]:
        print("FAIL: %s skipped although required: %s" % (test.id(), reason))
        r.skipped.remove((test, reason))
        failed += 1
    skipped = len(r.skipped)
    passed = r.testsRun - failed - skipped
    print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(0 if failed == 0 and r.testsRun > 0 else 1)


if __name__ == "__main__":
    main()
