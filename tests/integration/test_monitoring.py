# SPDX-License-Identifier: Apache-2.0
"""The metrics the alerts and the dashboard need, scraped from the real binary: calls in flight
and the oldest operation by method, lock conflicts (ABORTED), per-cluster connection state,
staged volumes by mapper and by condition, the doctor's findings passed through from its
textfile (and nothing else from that file); and every metric that deploy/monitoring's dashboard
and alert rules query is one the driver really exports."""
import json
import os
import re
import threading
import time
import unittest

import grpc

from lib import MiB, Driver, code_of, csi, mount_cap, need_ceph, secrets
from test_metrics import free_port, scrape, value

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MONITORING = os.path.join(TOP, "deploy", "monitoring")


def create_req(name, cluster):
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=8 * MiB),
        volume_capabilities=[mount_cap()], parameters={"clusterID": cluster, "pool": "rbd"},
        secrets=secrets())


def exported_names(text):
    """Metric names of an exposition: each sample's name, and each family a # TYPE line declares
    (a family with no series yet, such as the connection state before the first connection),
    with a histogram's _bucket, _sum and _count."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{|\s)", line)
        if m:
            names.add(m.group(1))
        m = re.match(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$", line)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
    return names


def queried_names(expr):
    """Metric names a PromQL expression uses (ours and process_*), without label names,
    functions or label values."""
    expr = re.sub(r'"[^"]*"', '""', expr)          # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)          # matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    return set(re.findall(r"\b((?:rbdcsi|process)_[a-zA-Z0-9_]+)", expr))


def dashboard_exprs():
    with open(os.path.join(MONITORING, "dashboard.json")) as f:
        dash = json.load(f)  # valid JSON, or this fails
    exprs = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            exprs.append(t["expr"])
    return dash, exprs


def rule_exprs():
    import yaml
    with open(os.path.join(MONITORING, "rules.yaml")) as f:
        doc = yaml.safe_load(f)
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


class TestMonitoring(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.d = Driver("--metrics-address=127.0.0.1:%d" % cls.port, "--ceph-connect-timeout=4",
                       name="monitoring")
        cls.state = os.path.join(cls.d.dir, "state", "rbdcsi.io")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def metrics(self):
        return scrape(self.port)[1]

    def test_metrics__in_flight_lock_conflicts_and_connection_state(self):
        text = self.metrics()
        self.assertEqual(value(text, "rbdcsi_calls_in_flight", method="CreateVolume"), 0)
        self.assertEqual(value(text, "rbdcsi_operation_oldest_seconds", method="CreateVolume"), 0)
        conflicts0 = value(text, "rbdcsi_operation_lock_conflicts_total", method="CreateVolume")
        self.assertEqual(conflicts0, 0)

        # A create against a cluster nobody answers for stays in flight until its connect
        # timeout, holding the name; a second create of the same name is ABORTED meanwhile.
        result = {}
        t = threading.Thread(target=lambda: result.update(
            code=code_of(self.d.controller.CreateVolume, create_req("pvc-mon", "dead"),
                         timeout=30)))
        t.start()
        try:
            for _ in range(200):
                text = self.metrics()
                if value(text, "rbdcsi_calls_in_flight", method="CreateVolume") == 1:
                    break
                time.sleep(0.02)
            self.assertEqual(value(text, "rbdcsi_calls_in_flight", method="CreateVolume"), 1)
            code, msg = code_of(self.d.controller.CreateVolume, create_req("pvc-mon", "dead"),
                                timeout=30)
            self.assertEqual(code, grpc.StatusCode.ABORTED, msg)
            text = self.metrics()
            self.assertEqual(value(text, "rbdcsi_operation_lock_conflicts_total",
                                   method="CreateVolume"), 1)
            self.assertGreater(value(text, "rbdcsi_operation_oldest_seconds",
                                     method="CreateVolume"), 0)
        finally:
            t.join()
        self.assertEqual(result["code"][0], grpc.StatusCode.UNAVAILABLE, result)
        text = self.metrics()
        self.assertEqual(value(text, "rbdcsi_calls_in_flight", method="CreateVolume"), 0)
        self.assertEqual(value(text, "rbdcsi_operation_oldest_seconds", method="CreateVolume"), 0)
        self.assertEqual(value(text, "rbdcsi_ceph_connection_up", cluster="dead"), 0)
        self.assertGreater(value(text, "rbdcsi_ceph_connection_last_attempt_timestamp_seconds",
                                 cluster="dead"), 1e9)

    @need_ceph
    def test_metrics__connection_up(self):
        v = self.d.controller.CreateVolume(create_req("pvc-mon-up", "test")).volume
        self.d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                               secrets=secrets()))
        text = self.metrics()
        self.assertEqual(value(text, "rbdcsi_ceph_connection_up", cluster="test"), 1)
        self.assertGreaterEqual(value(text, "rbdcsi_ceph_connections"), 1)

    def test_metrics__node_stages_by_mapper_and_condition(self):
        text = self.metrics()
        for mapper in ("fuse", "krbd", "nbd"):
            self.assertEqual(value(text, "rbdcsi_node_staged_volumes_by_mapper",
                                   mapper=mapper), 0)
        self.assertEqual(value(text, "rbdcsi_node_volume_condition", condition="normal"), 0)
        # A state file whose mount is gone counts as abnormal (a hand-written one: the real
        # stage path is tested in test_node).
        stage = os.path.join(self.state, "stage")
        os.makedirs(stage, exist_ok=True)
        import hashlib
        vid = "mon-vol"
        path = os.path.join(stage, hashlib.sha256(vid.encode()).hexdigest() + ".json")
        with open(path, "w") as f:
            json.dump({"version": 1, "volume_id": vid, "phase": "staged", "mapper": "krbd",
                       "access": "mount", "device": "/dev/rbd-none",
                       "staging_path": os.path.join(self.d.dir, "gone"), "pool": "rbd",
                       "image": "csi-vol-x"}, f)
        try:
            text = self.metrics()
            self.assertEqual(value(text, "rbdcsi_node_staged_volumes_by_mapper",
                                   mapper="krbd"), 1)
            self.assertEqual(value(text, "rbdcsi_node_volume_condition",
                                   condition="abnormal"), 1)
            self.assertEqual(value(text, "rbdcsi_node_volume_condition",
                                   condition="normal"), 0)
        finally:
            os.unlink(path)

    def write_doctor_textfile(self):
        os.makedirs(self.state, exist_ok=True)
        with open(os.path.join(self.state, "doctor.prom"), "w") as f:
            f.write("# HELP rbdcsi_doctor_findings x\n# TYPE rbdcsi_doctor_findings gauge\n"
                    'rbdcsi_doctor_findings{kind="trash_leftover"} 3\n'
                    "rbdcsi_doctor_last_run_success 1\n"
                    "rbdcsi_doctor_last_run_timestamp_seconds 1700000000\n"
                    "evil_metric 1\n")

    def test_metrics__doctor_findings_from_textfile(self):
        self.write_doctor_textfile()
        text = self.metrics()
        self.assertEqual(value(text, "rbdcsi_doctor_findings", kind="trash_leftover"), 3)
        self.assertEqual(value(text, "rbdcsi_doctor_last_run_success"), 1)
        self.assertIsNone(value(text, "evil_metric"))

    def test_dashboard_and_rules__query_only_exported_metrics(self):
        self.write_doctor_textfile()
        # A finished call of each kind the dashboard shows, so its histogram series exist.
        self.d.identity.Probe(csi.ProbeRequest())
        exported = exported_names(self.metrics())
        dash, exprs = dashboard_exprs()
        self.assertTrue(dash.get("title") and dash.get("uid"))
        self.assertGreaterEqual(len(exprs), 6)
        rules = rule_exprs()
        self.assertGreaterEqual(len(rules), 6)
        used = set()
        for e in exprs + rules:
            names = queried_names(e)
            self.assertTrue(names, "no metric in %r" % e)
            used |= names
        missing = sorted(n for n in used if n not in exported)
        self.assertEqual(missing, [], "queried but not exported")
        # Also the self-check of the check: a name the driver does not export is caught.
        self.assertNotIn("rbdcsi_no_such_metric", exported)


if __name__ == "__main__":
    unittest.main()
