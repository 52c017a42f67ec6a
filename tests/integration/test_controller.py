# SPDX-License-Identifier: Apache-2.0
"""The controller service against the real Ceph: create/delete idempotency, ALREADY_EXISTS,
publish semantics, expand, list, get, capacity, bad input leaving the pool unchanged,
concurrency, crash safety at every failpoint, Ceph outages."""
import concurrent.futures
import os
import subprocess
import threading
import time
import unittest

import grpc

from lib import (GiB, MiB, Driver, block_cap, ceph, code_of, csi, journal_state, mount_cap,
                 need_ceph, pool_images, sc_params, secrets)

AM = csi.VolumeCapability.AccessMode
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def create_req(name, size=64 * MiB, caps=None, params=None, with_secrets=True, limit=0):
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=size, limit_bytes=limit),
        volume_capabilities=[mount_cap()] if caps is None else caps,
        parameters=params or sc_params(),
        secrets=secrets() if with_secrets else {})


@need_ceph
class TestController(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Driver(mode="controller", name="controller")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def delete(self, vid):
        self.d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vid, secrets=secrets()))

    def test_create__idempotent_and_visible_in_pool(self):
        r1 = self.d.controller.CreateVolume(create_req("pvc-idem", 10 * MiB + 1))
        r2 = self.d.controller.CreateVolume(create_req("pvc-idem", 10 * MiB + 1))
        v = r1.volume
        self.assertEqual(v.volume_id, r2.volume.volume_id)
        self.assertEqual(v.capacity_bytes, 11 * MiB)
        self.assertLessEqual(len(v.volume_id), 128)
        ctx = dict(v.volume_context)
        self.assertEqual(ctx["clusterID"], "test")
        self.assertEqual(ctx["pool"], ceph()["pool"])
        self.assertEqual(ctx["fsType"], "ext4")
        self.assertIn(ctx["imageName"], pool_images())
        self.delete(v.volume_id)
        self.delete(v.volume_id)  # idempotent
        self.assertNotIn(ctx["imageName"], pool_images())

    def test_create__same_name_other_size_or_caps_already_exists(self):
        v = self.d.controller.CreateVolume(create_req("pvc-conflict", 16 * MiB)).volume
        code, msg = code_of(self.d.controller.CreateVolume, create_req("pvc-conflict", 32 * MiB))
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        code, _ = code_of(self.d.controller.CreateVolume,
                          create_req("pvc-conflict", 16 * MiB, caps=[block_cap()]))
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        self.delete(v.volume_id)

    def test_create__default_size_and_limit(self):
        r = self.d.controller.CreateVolume(csi.CreateVolumeRequest(
            name="pvc-default", volume_capabilities=[mount_cap()], parameters=sc_params(),
            secrets=secrets()))
        self.assertEqual(r.volume.capacity_bytes, GiB)
        self.delete(r.volume.volume_id)

    def test_bad_input__right_code_field_named_pool_unchanged(self):
        before = journal_state()
        big = "x" * 300
        cases = [
            (create_req(""), grpc.StatusCode.INVALID_ARGUMENT, "name"),
            (create_req("b1", caps=[]), grpc.StatusCode.INVALID_ARGUMENT, "volume_capabilities"),
            (create_req("b2", size=-5), grpc.StatusCode.INVALID_ARGUMENT, "capacity_range"),
            (create_req("b3", size=20 * MiB, limit=10 * MiB), grpc.StatusCode.INVALID_ARGUMENT,
             "capacity_range"),
            (create_req("b4", params=sc_params(imageFeatres="layering")),
             grpc.StatusCode.INVALID_ARGUMENT, "imageFeatres"),
            (create_req("b5", params=sc_params(clusterID="nosuch")),
             grpc.StatusCode.INVALID_ARGUMENT, "clusterID"),
            (create_req("b6", params=sc_params(pool="nosuchpool")),
             grpc.StatusCode.INVALID_ARGUMENT, "nosuchpool"),
            (create_req("b7", params={"pool": "rbd"}), grpc.StatusCode.INVALID_ARGUMENT,
             "clusterID"),
            (create_req("b8", params=sc_params(mounter=big)), grpc.StatusCode.INVALID_ARGUMENT,
             "mounter"),
            (create_req("b9", params=sc_params(imageFeatures="layering,bogus")),
             grpc.StatusCode.INVALID_ARGUMENT, "feature"),
            (create_req("b10", with_secrets=False), grpc.StatusCode.INVALID_ARGUMENT,
             "secrets"),
            (create_req("x" * 2000), grpc.StatusCode.INVALID_ARGUMENT, "name"),
            (create_req("b11", caps=[mount_cap(mode=AM.MULTI_NODE_MULTI_WRITER)]),
             grpc.StatusCode.INVALID_ARGUMENT, "multi-node"),
        ]
        for req, want, field in cases:
            code, msg = code_of(self.d.controller.CreateVolume, req, timeout=30)
            self.assertEqual(code, want, (req.name[:20], msg))
            self.assertIn(field, msg, (req.name[:20], msg))
        for vid in ["", "garbage"]:
            code, msg = code_of(self.d.controller.ControllerExpandVolume,
                                csi.ControllerExpandVolumeRequest(
                                    volume_id=vid, capacity_range=csi.CapacityRange(
                                        required_bytes=MiB), secrets=secrets()))
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT if not vid
                             else grpc.StatusCode.NOT_FOUND, msg)
            self.assertIn("volume_id", msg)
        self.assertEqual(journal_state(), before)

    def test_delete__missing_or_malformed_id_is_success(self):
        code, msg = code_of(self.d.controller.DeleteVolume, csi.DeleteVolumeRequest())
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("volume_id", msg)
        for vid in ["not-an-id", "0001-v-04-test-0000000000000001-00--"
                    "12345678-1234-4234-8234-123456789abc", "x" * 200]:
            self.d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vid,
                                                                   secrets=secrets()))

    def test_publish__single_node_exclusive_and_idempotent(self):
        v = self.d.controller.CreateVolume(create_req("pvc-pub")).volume
        pub = lambda node, cap=None, ro=False: self.d.controller.ControllerPublishVolume(
            csi.ControllerPublishVolumeRequest(volume_id=v.volume_id, node_id=node,
                                               volume_capability=cap or mount_cap(),
                                               readonly=ro, secrets=secrets()))
        r = pub("node-a")
        self.assertEqual(r.publish_context["readOnly"], "false")
        pub("node-a")  # idempotent
        code, msg = code_of(pub, "node-b")
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        code, _ = code_of(pub, "node-a", None, True)
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        g = self.d.controller.ControllerGetVolume(
            csi.ControllerGetVolumeRequest(volume_id=v.volume_id))
        self.assertEqual(list(g.status.published_node_ids), ["node-a"])
        # Attached: deleting is refused and changes nothing.
        code, _ = code_of(self.d.controller.DeleteVolume, csi.DeleteVolumeRequest(
            volume_id=v.volume_id, secrets=secrets()))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        for _ in range(2):
            self.d.controller.ControllerUnpublishVolume(csi.ControllerUnpublishVolumeRequest(
                volume_id=v.volume_id, node_id="node-a", secrets=secrets()))
        pub("node-b")
        self.d.controller.ControllerUnpublishVolume(csi.ControllerUnpublishVolumeRequest(
            volume_id=v.volume_id, secrets=secrets()))
        self.delete(v.volume_id)

    def test_publish__multi_node_block_to_two_nodes(self):
        cap = block_cap(AM.MULTI_NODE_MULTI_WRITER)
        v = self.d.controller.CreateVolume(create_req("pvc-rwx", caps=[cap])).volume
        for node in ("n1", "n2"):
            self.d.controller.ControllerPublishVolume(csi.ControllerPublishVolumeRequest(
                volume_id=v.volume_id, node_id=node, volume_capability=cap, secrets=secrets()))
        for node in ("n1", "n2"):
            self.d.controller.ControllerUnpublishVolume(csi.ControllerUnpublishVolumeRequest(
                volume_id=v.volume_id, node_id=node, secrets=secrets()))
        self.delete(v.volume_id)

    def test_expand__grows_never_shrinks(self):
        v = self.d.controller.CreateVolume(create_req("pvc-grow", 32 * MiB)).volume
        r = self.d.controller.ControllerExpandVolume(csi.ControllerExpandVolumeRequest(
            volume_id=v.volume_id, capacity_range=csi.CapacityRange(required_bytes=64 * MiB),
            secrets=secrets()))
        self.assertEqual(r.capacity_bytes, 64 * MiB)
        self.assertTrue(r.node_expansion_required)
        r = self.d.controller.ControllerExpandVolume(csi.ControllerExpandVolumeRequest(
            volume_id=v.volume_id, capacity_range=csi.CapacityRange(required_bytes=16 * MiB),
            secrets=secrets()))
        self.assertEqual(r.capacity_bytes, 64 * MiB)
        info = subprocess.run(["rbd", "-c", ceph()["conf"], "info", "--format=json",
                               "%s/%s" % (ceph()["pool"], v.volume_context["imageName"])],
                              capture_output=True, text=True, check=True).stdout
        self.assertIn('"size":%d' % (64 * MiB), info.replace(" ", ""))
        self.delete(v.volume_id)

    def test_validate__looks_the_volume_up(self):
        code, _ = code_of(self.d.controller.ValidateVolumeCapabilities,
                          csi.ValidateVolumeCapabilitiesRequest(
                              volume_id="0001-v-04-test-0000000000000001-00--"
                                        "12345678-1234-4234-8234-123456789abc",
                              volume_capabilities=[mount_cap()], secrets=secrets()))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        v = self.d.controller.CreateVolume(create_req("pvc-validate")).volume
        r = self.d.controller.ValidateVolumeCapabilities(csi.ValidateVolumeCapabilitiesRequest(
            volume_id=v.volume_id, volume_capabilities=[mount_cap()], secrets=secrets()))
        self.assertTrue(r.HasField("confirmed"))
        r = self.d.controller.ValidateVolumeCapabilities(csi.ValidateVolumeCapabilitiesRequest(
            volume_id=v.volume_id, volume_capabilities=[mount_cap("xfs")], secrets=secrets()))
        self.assertFalse(r.HasField("confirmed"))
        self.assertIn("ext4", r.message)
        self.delete(v.volume_id)

    def test_list__paginates_and_bad_token_aborts(self):
        ids = [self.d.controller.CreateVolume(create_req("pvc-list-%d" % i)).volume.volume_id
               for i in range(5)]
        seen, token, pages = [], "", 0
        while True:
            r = self.d.controller.ListVolumes(csi.ListVolumesRequest(max_entries=2,
                                                                     starting_token=token))
            self.assertLessEqual(len(r.entries), 2)
            seen += [e.volume.volume_id for e in r.entries]
            pages += 1
            token = r.next_token
            if not token:
                break
        for vid in ids:
            self.assertIn(vid, seen)
        self.assertEqual(len(seen), len(set(seen)))
        self.assertGreaterEqual(pages, 3)
        code, _ = code_of(self.d.controller.ListVolumes,
                          csi.ListVolumesRequest(starting_token="bogus"))
        self.assertEqual(code, grpc.StatusCode.ABORTED)
        for vid in ids:
            self.delete(vid)

    def test_capacity__reports_from_pool_stats(self):
        r = self.d.controller.GetCapacity(csi.GetCapacityRequest(parameters=sc_params()))
        # The test cluster runs no ceph-mgr, and without one the PG statistics, hence the
        # capacity, are 0 (measured, documented in the README).
        self.assertEqual(r.available_capacity, 0)
        self.assertEqual(r.minimum_volume_size.value, MiB)
        code, msg = code_of(self.d.controller.GetCapacity, csi.GetCapacityRequest(
            parameters=sc_params(pool="nosuchpool")))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("nosuchpool", msg)


@need_ceph
class TestControllerConcurrency(unittest.TestCase):
    def test_concurrency__50_parallel_same_name_one_image(self):
        d = Driver("--workers=16", mode="controller", name="conc")
        try:
            before = set(pool_images())
            results = []

            def one(_):
                ch = grpc.insecure_channel(d.endpoint)
                from lib import csi_grpc
                stub = csi_grpc.ControllerStub(ch)
                try:
                    return code_of(stub.CreateVolume, create_req("pvc-race"), timeout=60)
                finally:
                    ch.close()

            with concurrent.futures.ThreadPoolExecutor(50) as ex:
                results = list(ex.map(one, range(50)))
            ok = {r[1].volume.volume_id for r in results if r[0] == grpc.StatusCode.OK}
            codes = {r[0] for r in results}
            self.assertLessEqual(codes, {grpc.StatusCode.OK, grpc.StatusCode.ABORTED})
            self.assertEqual(len(ok), 1)
            new = set(pool_images()) - before
            self.assertEqual(len(new), 1)
            r = d.controller.CreateVolume(create_req("pvc-race"))
            self.assertEqual({r.volume.volume_id}, ok)
            d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=r.volume.volume_id,
                                                              secrets=secrets()))
        finally:
            d.stop()

    def test_concurrency__two_controllers_race_one_image(self):
        a = Driver(mode="controller", name="race-a")
        b = Driver(mode="controller", name="race-b")
        try:
            for round_ in range(5):
                name = "pvc-two-%d" % round_
                before = set(pool_images())
                out = [None, None]
                barrier = threading.Barrier(2)

                def go(i, drv):
                    barrier.wait()
                    out[i] = code_of(drv.controller.CreateVolume, create_req(name), timeout=60)

                ts = [threading.Thread(target=go, args=(i, drv)) for i, drv in enumerate((a, b))]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                ids = {o[1].volume.volume_id for o in out if o[0] == grpc.StatusCode.OK}
                self.assertEqual(len(ids), 1, out)
                self.assertEqual(len(set(pool_images()) - before), 1)
                # The loser (if it was told to retry) converges on the same volume.
                r = b.controller.CreateVolume(create_req(name))
                self.assertEqual({r.volume.volume_id}, ids)
                a.controller.DeleteVolume(csi.DeleteVolumeRequest(
                    volume_id=r.volume.volume_id, secrets=secrets()))
        finally:
            a.stop()
            b.stop()


CREATE_FAILPOINTS = ["volume-create:after-reserve", "volume-create:after-object",
                     "volume-create:after-image"]
DELETE_FAILPOINTS = ["volume-delete:after-mark", "volume-delete:after-image",
                     "volume-delete:after-unreserve"]


@need_ceph
class TestCrashSafety(unittest.TestCase):
    def test_crash__sigkill_at_each_create_and_delete_step_converges(self):
        baseline = journal_state()
        for fp in CREATE_FAILPOINTS:
            name = "pvc-crash-" + fp.split(":")[1]
            d = Driver(mode="controller", name="crash-create", env={"RBDCSI_FAILPOINTS": fp})
            code, _ = code_of(d.controller.CreateVolume, create_req(name), timeout=60)
            self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, fp)
            d.proc.wait(30)
            self.assertEqual(d.proc.returncode, -9, fp)  # killed at the failpoint
            d.stop()
            d = Driver(mode="controller", name="crash-retry")
            v = d.controller.CreateVolume(create_req(name)).volume
            st = journal_state()
            self.assertEqual(len(st["images"]), len(baseline["images"]) + 1, fp)
            self.assertIn(v.volume_context["imageName"], st["images"])
            d.stop()
            # Now kill the delete at each step, then retry it.
            for dfp in DELETE_FAILPOINTS:
                d = Driver(mode="controller", name="crash-delete",
                           env={"RBDCSI_FAILPOINTS": dfp})
                code, _ = code_of(d.controller.DeleteVolume, csi.DeleteVolumeRequest(
                    volume_id=v.volume_id, secrets=secrets()), timeout=60)
                d.stop()
                if code == grpc.StatusCode.OK:
                    break  # already gone: the failpoint was past this volume's state
                self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, dfp)
            d = Driver(mode="controller", name="crash-delete-retry")
            d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                              secrets=secrets()))
            d.stop()
            self.assertEqual(journal_state(), baseline, fp)

    def test_crash__each_delete_failpoint_alone(self):
        baseline = journal_state()
        for dfp in DELETE_FAILPOINTS:
            d = Driver(mode="controller", name="crash-del-alone")
            v = d.controller.CreateVolume(create_req("pvc-del-" + dfp.split(":")[1])).volume
            d.stop()
            d = Driver(mode="controller", name="crash-del-alone-fp",
                       env={"RBDCSI_FAILPOINTS": dfp})
            code, _ = code_of(d.controller.DeleteVolume, csi.DeleteVolumeRequest(
                volume_id=v.volume_id, secrets=secrets()), timeout=60)
            self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, dfp)
            d.stop()
            d = Driver(mode="controller", name="crash-del-alone-retry")
            d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                              secrets=secrets()))
            d.stop()
            self.assertEqual(journal_state(), baseline, dfp)


@need_ceph
class TestCephDown(unittest.TestCase):
    def ctl(self, what):
        subprocess.run([os.path.join(TOP, "tests/ceph/ceph-ctl.sh"), what], check=True,
                       capture_output=True, timeout=120)

    def test_outage__unreachable_cluster_fails_fast(self):
        d = Driver("--ceph-connect-timeout=3", mode="controller", name="dead-cluster")
        try:
            t0 = time.time()
            code, msg = code_of(d.controller.CreateVolume,
                                create_req("pvc-dead", params=sc_params(clusterID="dead")),
                                timeout=60)
            took = time.time() - t0
            self.assertIn(code, (grpc.StatusCode.UNAVAILABLE,
                                 grpc.StatusCode.DEADLINE_EXCEEDED), msg)
            self.assertIn("dead", msg)
            self.assertLess(took, 15)
        finally:
            d.stop()

    @unittest.skipUnless(os.environ.get("CEPH_DIR"), "needs the harness's CEPH_DIR")
    def test_outage__mon_stopped_then_back(self):
        d = Driver("--ceph-connect-timeout=3", "--ceph-op-timeout=5", mode="controller",
                   name="mon-down")
        try:
            self.ctl("stop-mon")
            try:
                t0 = time.time()
                code, msg = code_of(d.controller.CreateVolume, create_req("pvc-mon-down"),
                                    timeout=60)
                took = time.time() - t0
                self.assertIn(code, (grpc.StatusCode.UNAVAILABLE,
                                     grpc.StatusCode.DEADLINE_EXCEEDED), msg)
                self.assertLess(took, 20)
            finally:
                self.ctl("start-mon")
            deadline = time.time() + 60
            while True:
                code, r = code_of(d.controller.CreateVolume, create_req("pvc-mon-down"),
                                  timeout=60)
                if code == grpc.StatusCode.OK or time.time() > deadline:
                    break
                time.sleep(1)
            self.assertEqual(code, grpc.StatusCode.OK, r)
            d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=r.volume.volume_id,
                                                              secrets=secrets()))
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
