# SPDX-License-Identifier: Apache-2.0
"""The daemon itself: flags, socket hygiene, Identity, unknown methods, limits, logging,
shutdown."""
import json
import os
import signal
import stat
import subprocess
import threading
import time
import unittest

import grpc

from lib import RBDCSI, Driver, code_of, csi, csi_grpc, write_config


class TestFlags(unittest.TestCase):
    def run_rbdcsi(self, *args):
        return subprocess.run([RBDCSI, *args], capture_output=True, text=True, timeout=30)

    def test_flags__unknown_flag_exits_2_naming_it(self):
        r = self.run_rbdcsi("--no-such-flag")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--no-such-flag", r.stderr)

    def test_flags__bad_values_exit_2_naming_the_flag(self):
        for bad, name in [("--mode=both", "--mode"), ("--workers=0", "--workers"),
                          ("--log-level=loud", "--log-level"), ("--socket-mode=999", "--socket-mode"),
                          ("--topology=novalue", "--topology"), ("--drivername=Bad_Name", "--drivername")]:
            r = self.run_rbdcsi("--nodeid=n", bad)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn(name, r.stderr, bad)

    def test_flags__node_mode_requires_nodeid(self):
        r = self.run_rbdcsi("--mode=node")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--nodeid", r.stderr)

    def test_flags__help_and_version(self):
        r = self.run_rbdcsi("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--endpoint", r.stdout)
        r = self.run_rbdcsi("--version")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("rbdcsi "))

    def test_flags__dry_run_prints_settings(self):
        r = self.run_rbdcsi("--mode=controller", "--drivername=x.example.com", "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["mode"], "controller")
        self.assertEqual(out["drivername"], "x.example.com")
        self.assertIn("controller_capabilities", out)

    def test_config__malformed_file_names_file_line_and_field(self):
        d = Driver.__new__(Driver)  # only for a temp dir
        import tempfile
        tmp = tempfile.mkdtemp(prefix="rbdcsi-cfg.")
        path = os.path.join(tmp, "c.json")
        with open(path, "w") as f:
            f.write('[\n  {"clusterID": "a", "monitors": ["1.2.3.4:6789"]},\n'
                    '  {"clusterID": "b",\n   "monitors": "not-a-list"}\n]\n')
        r = self.run_rbdcsi("--config=" + path, "--nodeid=n", "--dry-run")
        self.assertEqual(r.returncode, 2)
        self.assertIn(path + ":4:", r.stderr)
        self.assertIn("'monitors'", r.stderr)
        with open(path, "w") as f:
            f.write('[{"clusterID": "a",\n "monitors": ["x:1"],\n "radosNamespaec": "t"}]')
        r = self.run_rbdcsi("--config=" + path, "--nodeid=n", "--dry-run")
        self.assertEqual(r.returncode, 2)
        self.assertIn(path + ":3:", r.stderr)
        self.assertIn("radosNamespaec", r.stderr)
        with open(path, "w") as f:
            f.write('[{"clusterID": "a",\n "monitors": ["x:1"],,}]')
        r = self.run_rbdcsi("--config=" + path, "--nodeid=n", "--dry-run")
        self.assertEqual(r.returncode, 2)
        self.assertIn(path + ":2:", r.stderr)
        self.assertIn("invalid JSON", r.stderr)
        del d


class TestServer(unittest.TestCase):
    def setUp(self):
        self.d = Driver()

    def tearDown(self):
        self.assertEqual(self.d.stop(), 0, self.d.log_text()[-3000:])

    def test_identity__plugin_info(self):
        r = self.d.identity.GetPluginInfo(csi.GetPluginInfoRequest())
        self.assertEqual(r.name, "rbdcsi.io")
        self.assertTrue(r.vendor_version)

    def test_identity__capabilities_and_probe(self):
        r = self.d.identity.GetPluginCapabilities(csi.GetPluginCapabilitiesRequest())
        services = [c.service.type for c in r.capabilities if c.HasField("service")]
        self.assertIn(csi.PluginCapability.Service.CONTROLLER_SERVICE, services)
        r = self.d.identity.Probe(csi.ProbeRequest())
        self.assertTrue(r.ready.value)

    def test_socket__mode_0660_and_lock_file(self):
        st = os.stat(self.d.socket)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertTrue(os.path.exists(self.d.socket + ".lock"))

    def test_socket__second_instance_refuses_to_start(self):
        second = subprocess.run([RBDCSI, "--endpoint=" + self.d.endpoint, "--nodeid=n2"],
                                capture_output=True, text=True, timeout=30)
        self.assertNotEqual(second.returncode, 0)
        self.assertIn("Another rbdcsi instance is serving", second.stderr)
        # The first one still serves on its socket.
        r = self.d.identity.Probe(csi.ProbeRequest())
        self.assertTrue(r.ready.value)

    def test_methods__unknown_method_is_unimplemented_with_its_name(self):
        call = self.d.channel.unary_unary("/csi.v1.Nope/Nothing")
        code, details = code_of(call, b"", timeout=5)
        self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("/csi.v1.Nope/Nothing", details)

    def test_methods__registered_but_unimplemented_names_the_method(self):
        # The SnapshotMetadata service (server-streaming) is registered, not implemented.
        stub = csi_grpc.SnapshotMetadataStub(self.d.channel)
        code, details = code_of(lambda: list(stub.GetMetadataAllocated(
            csi.GetMetadataAllocatedRequest(snapshot_id="x"), timeout=5)))
        self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("GetMetadataAllocated", details)

    def test_methods__oversized_request_is_refused(self):
        req = csi.CreateVolumeRequest(name="x" * (2 * 1024 * 1024))
        code, _ = code_of(self.d.controller.CreateVolume, req, timeout=10)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        r = self.d.identity.Probe(csi.ProbeRequest())
        self.assertTrue(r.ready.value)

    def test_methods__garbage_request_is_invalid_argument(self):
        call = self.d.channel.unary_unary("/csi.v1.Identity/GetPluginInfo")
        code, _ = code_of(call, b"\xff\xff\xff\xff", timeout=5)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_logging__lines_carry_request_id_and_method(self):
        self.d.identity.GetPluginInfo(csi.GetPluginInfoRequest())
        lines = [l for l in self.d.log_text().splitlines() if "method=GetPluginInfo" in l]
        self.assertTrue(lines)
        for l in lines:
            self.assertRegex(l, r"^ts=\S+ level=\w+ req=\d+ method=GetPluginInfo ")


class TestLogFormat(unittest.TestCase):
    def test_logging__json_lines_have_the_fields(self):
        import json as j
        d = Driver("--log-format=json", name="jsonlog")
        d.identity.GetPluginInfo(csi.GetPluginInfoRequest())
        code_of(d.controller.DeleteVolume, csi.DeleteVolumeRequest(), timeout=5)
        self.assertEqual(d.stop(), 0)
        lines = [j.loads(l) for l in d.log_text().splitlines() if l.startswith("{")]
        self.assertTrue(lines)
        for o in lines:
            self.assertIn("ts", o)
            self.assertIn(o["level"], ("debug", "info", "warn", "error"))
            self.assertIn("msg", o)
        calls = [o for o in lines if o.get("method") == "DeleteVolume"]
        self.assertTrue(calls)
        self.assertTrue(all("req" in o for o in calls))
        self.assertTrue(any("volume_id is required" in o["msg"] for o in calls))


class TestShutdown(unittest.TestCase):
    def test_shutdown__sigterm_under_load_exits_0_and_removes_socket(self):
        d = Driver(name="shutdown")
        stop = threading.Event()
        errors = []
        counts = [0]

        def load():
            ch = grpc.insecure_channel(d.endpoint)
            stub = csi_grpc.IdentityStub(ch)
            while not stop.is_set():
                try:
                    stub.Probe(csi.ProbeRequest(), timeout=5)
                    counts[0] += 1
                except grpc.RpcError as e:
                    if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                        errors.append(e.code())
            ch.close()

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        t0 = time.time()
        rc = d.stop()
        took = time.time() - t0
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(rc, 0, d.log_text()[-3000:])
        self.assertLess(took, 15)
        self.assertGreater(counts[0], 100)
        self.assertEqual(errors, [])
        self.assertFalse(os.path.exists(d.socket))
        self.assertFalse(os.path.exists(d.socket + ".lock"))

    def test_shutdown__stale_socket_is_replaced(self):
        d = Driver(name="stale", wait=False)
        d.wait_ready()
        d.kill()  # leaves the socket and the lock file behind
        self.assertTrue(os.path.exists(d.socket))
        again = subprocess.Popen([RBDCSI, "--endpoint=" + d.endpoint, "--nodeid=n"],
                                 stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            deadline = time.time() + 20
            ok = False
            while time.time() < deadline and not ok:
                ch = grpc.insecure_channel(d.endpoint)
                try:
                    ok = csi_grpc.IdentityStub(ch).Probe(csi.ProbeRequest(), timeout=2).ready.value
                except grpc.RpcError:
                    time.sleep(0.05)
                ch.close()
            self.assertTrue(ok)
        finally:
            again.send_signal(signal.SIGTERM)
            self.assertEqual(again.wait(30), 0)


if __name__ == "__main__":
    unittest.main()
