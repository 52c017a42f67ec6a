# SPDX-License-Identifier: Apache-2.0
"""Defaults that decide how the driver scales (issue 18): the controller's worker pool."""
import json
import os
import subprocess
import tempfile
import unittest

from lib import RBDCSI, write_config


class TestWorkerDefaults(unittest.TestCase):
    """A controller's calls wait on Ceph round trips, so it gets more workers than a node
    plugin (make bench: 8 workers held a burst of 64 provisions to 0.67-0.78x of bare librbd).
    """

    def settings(self, *args):
        d = tempfile.mkdtemp(prefix="rbdcsi-scale.")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        cfg = write_config(d)
        r = subprocess.run([RBDCSI, "--config=" + cfg, "--dry-run", *args],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_workers__controller_and_all_default_to_32_node_to_8(self):
        self.assertEqual(self.settings("--mode=controller")["workers"], 32)
        self.assertEqual(self.settings("--mode=all", "--nodeid=n")["workers"], 32)
        self.assertEqual(self.settings("--mode=node", "--nodeid=n")["workers"], 8)

    def test_workers__an_explicit_value_wins(self):
        self.assertEqual(self.settings("--mode=controller", "--workers=5")["workers"], 5)
        self.assertEqual(self.settings("--mode=node", "--nodeid=n", "--workers=40")["workers"],
                         40)


if __name__ == "__main__":
    unittest.main()
