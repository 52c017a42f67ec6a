# SPDX-License-Identifier: Apache-2.0
"""The daemon under valgrind: 10,000 calls (successes, failures, unknown methods), then SIGTERM;
no leak, no memory error."""
import os
import re
import shutil
import time
import unittest

import grpc

from lib import Driver, code_of, csi, csi_grpc, ceph, secrets

CALLS = int(os.environ.get("RBDCSI_VALGRIND_CALLS", "10000"))


@unittest.skipUnless(shutil.which("valgrind"), "valgrind is not installed")
class TestValgrind(unittest.TestCase):
    def test_valgrind__no_leak_after_many_calls(self):
        d = Driver(name="valgrind", wait=False, valgrind=[
            "valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--track-fds=no", "--num-callers=30"])
        d.wait_ready(timeout=120)
        t0 = time.time()
        unknown = d.channel.unary_unary("/csi.v1.Nope/Nothing")
        n = 0
        while n < CALLS:
            d.identity.Probe(csi.ProbeRequest(), timeout=30)
            d.identity.GetPluginInfo(csi.GetPluginInfoRequest(), timeout=30)
            d.identity.GetPluginCapabilities(csi.GetPluginCapabilitiesRequest(), timeout=30)
            d.controller.ControllerGetCapabilities(csi.ControllerGetCapabilitiesRequest(),
                                                   timeout=30)
            d.node.NodeGetInfo(csi.NodeGetInfoRequest(), timeout=30)
            code_of(d.controller.DeleteVolume, csi.DeleteVolumeRequest(), timeout=30)
            code_of(d.controller.CreateVolume, csi.CreateVolumeRequest(name="x"), timeout=30)
            code_of(unknown, b"", timeout=30)
            n += 8
        if ceph():
            # Some calls that reach Ceph and fail there, and succeed there.
            for i in range(20):
                code_of(d.controller.DeleteVolume,
                        csi.DeleteVolumeRequest(volume_id="0001-v-04-test-0000000000000001-00--"
                                                "00000000-0000-4000-8000-00000000000%d" % (i % 10),
                                                secrets=secrets()), timeout=60)
                n += 1
        took = time.time() - t0
        rc = d.stop(timeout=120)
        log = d.log_text()
        summary = "\n".join(l for l in log.splitlines() if re.search(
            r"(definitely|indirectly|possibly) lost|ERROR SUMMARY", l))
        print("\n    %d calls in %.1fs under valgrind\n%s" % (n, took, summary))
        self.assertEqual(rc, 0, log[-6000:])
        self.assertRegex(log, r"ERROR SUMMARY: 0 errors")
        self.assertNotRegex(log, r"definitely lost: [1-9]")
        self.assertNotRegex(log, r"indirectly lost: [1-9]")


if __name__ == "__main__":
    unittest.main()
