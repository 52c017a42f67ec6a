# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics and /healthz: scraped over HTTP, values move with calls."""
import os
import re
import socket
import unittest
import urllib.request

import grpc

from lib import Driver, block_cap, code_of, csi, need_ceph, need_root, sc_params, secrets


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.status, r.read().decode()


def value(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted((m.group(2) or "{}")[1:-1].split(","))) if m.group(2) else ""
        if got == want:
            return float(m.group(3))
    return None


class TestMetrics(unittest.TestCase):
    def test_metrics__scrape_moves_with_calls(self):
        port = free_port()
        d = Driver("--metrics-address=127.0.0.1:%d" % port, name="metrics")
        try:
            status, health = scrape(port, "/healthz")
            self.assertEqual((status, health), (200, "ok\n"))
            _, before = scrape(port)
            probes0 = value(before, "rbdcsi_calls_total", method="Probe", code="OK") or 0
            for _ in range(7):
                d.identity.Probe(csi.ProbeRequest())
            code, _ = code_of(d.controller.DeleteVolume, csi.DeleteVolumeRequest(), timeout=5)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            _, after = scrape(port)
            self.assertEqual(value(after, "rbdcsi_calls_total", method="Probe", code="OK"),
                             probes0 + 7)
            self.assertEqual(value(after, "rbdcsi_calls_total", method="DeleteVolume",
                                   code="INVALID_ARGUMENT"), 1)
            self.assertGreaterEqual(
                value(after, "rbdcsi_call_duration_seconds_count", method="Probe"), probes0 + 7)
            self.assertGreater(value(after, "process_resident_memory_bytes"), 1e6)
            self.assertEqual(value(after, "rbdcsi_ready"), 1)
            with self.assertRaises(urllib.error.HTTPError) as e:
                scrape(port, "/nope")
            self.assertEqual(e.exception.code, 404)
        finally:
            self.assertEqual(d.stop(), 0)

    @need_ceph
    @need_root
    def test_metrics__stages_counted_by_mapper(self):
        """mounter auto: the log names the mapper chosen and why the others were passed over;
        rbdcsi_node_stages_total counts the stage under that mapper (issue 14)."""
        port = free_port()
        d = Driver("--metrics-address=127.0.0.1:%d" % port, name="metrics-stages")
        vol = None
        staging = os.path.join(d.dir, "plugins", "staging", "m")
        try:
            _, before = scrape(port)
            for m in ("krbd", "nbd", "fuse"):
                self.assertEqual(value(before, "rbdcsi_node_stages_total", mapper=m), 0)
            cap = block_cap()
            vol = d.controller.CreateVolume(csi.CreateVolumeRequest(
                name="pvc-metrics-stage", volume_capabilities=[cap],
                capacity_range=csi.CapacityRange(required_bytes=64 << 20),
                parameters=sc_params(mounter="auto"), secrets=secrets()), timeout=60).volume
            os.makedirs(os.path.dirname(staging), exist_ok=True)
            d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
                volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
                volume_context=vol.volume_context, secrets=secrets()), timeout=120)
            m = re.search(r'msg="Mapper (\w+) chosen by mounter auto: ([^"]*)"', d.log_text())
            self.assertIsNotNone(m, "no 'Mapper ... chosen by mounter auto' log line")
            chosen, why = m.groups()
            if chosen != "krbd":
                # krbd was passed over: the reason says so, after trying modprobe rbd.
                self.assertIn("rbd kernel module not loaded", why)
                self.assertIn("modprobe", why)
            _, after = scrape(port)
            self.assertEqual(value(after, "rbdcsi_node_stages_total", mapper=chosen), 1)
            self.assertEqual(sum(value(after, "rbdcsi_node_stages_total", mapper=x)
                                 for x in ("krbd", "nbd", "fuse")), 1)
        finally:
            if vol is not None:
                d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
                    volume_id=vol.volume_id, staging_target_path=staging), timeout=120)
                d.controller.DeleteVolume(csi.DeleteVolumeRequest(
                    volume_id=vol.volume_id, secrets=secrets()), timeout=60)
            self.assertEqual(d.stop(), 0)

    def test_metrics__bad_address_refuses_to_start(self):
        import subprocess
        from lib import RBDCSI
        r = subprocess.run([RBDCSI, "--nodeid=n", "--metrics-address=nohost"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--metrics-address", r.stderr)


if __name__ == "__main__":
    unittest.main()
