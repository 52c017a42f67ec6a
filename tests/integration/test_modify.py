# SPDX-License-Identifier: Apache-2.0
"""ControllerModifyVolume and CreateVolume's mutable_parameters against the real Ceph: the QoS
keys land on the image as librbd config overrides (what "rbd config image get" reports), bad
keys and values are INVALID_ARGUMENT naming the key and change nothing, modify is idempotent and
changes only the keys given, a SIGKILL at each modify step converges on retry, and a limit
changed while a librbd client (rbd-fuse) has the image open reaches that client."""
import os
import subprocess
import tempfile
import time
import unittest

import grpc

from lib import (MiB, Driver, ceph, ceph_cli, code_of, csi, mount_cap, need_ceph, need_root,
                 omap_keys, sc_params, secrets)

MODIFY_FAILPOINTS = ["volume-modify:after-journal", "volume-modify:after-image"]


def create_req(name, mutable=None):
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=64 * MiB),
        volume_capabilities=[mount_cap()], parameters=sc_params(), secrets=secrets(),
        mutable_parameters=mutable or {})


def modify_req(vid, mutable):
    return csi.ControllerModifyVolumeRequest(volume_id=vid, mutable_parameters=mutable,
                                             secrets=secrets())


def image_qos(image):
    """The image's conf_rbd_qos_* overrides, as {option: value}."""
    out = ceph_cli("rbd", "image-meta", "list", "--format", "json",
                   "%s/%s" % (ceph()["pool"], image))
    import json
    meta = json.loads(out or "{}")
    return {k[len("conf_"):]: v for k, v in meta.items() if k.startswith("conf_rbd_qos_")}


def config_get(image, option):
    """What librbd resolves for option on image (image override, else pool, else global)."""
    return ceph_cli("rbd", "config", "image", "get", "%s/%s" % (ceph()["pool"], image),
                    option, check=False).strip()


def entry_qos(vid):
    uuid = vid.split("--")[-1]
    return [k for k in omap_keys("rbdcsi.volume." + uuid) if k.startswith("qos.")]


@need_ceph
class TestModify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Driver(mode="controller", name="modify")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def setUp(self):
        self.vols = []

    def tearDown(self):
        for vid in self.vols:
            code_of(self.d.controller.DeleteVolume,
                    csi.DeleteVolumeRequest(volume_id=vid, secrets=secrets()))

    def create(self, name, mutable=None):
        v = self.d.controller.CreateVolume(create_req(name, mutable)).volume
        self.vols.append(v.volume_id)
        return v

    def test_modify__capability_advertised(self):
        caps = self.d.controller.ControllerGetCapabilities(
            csi.ControllerGetCapabilitiesRequest()).capabilities
        self.assertIn(csi.ControllerServiceCapability.RPC.MODIFY_VOLUME,
                      [c.rpc.type for c in caps])

    def test_modify__sets_image_config_and_journal(self):
        v = self.create("pvc-modify-set")
        img = v.volume_context["imageName"]
        self.assertEqual(image_qos(img), {})
        self.d.controller.ControllerModifyVolume(modify_req(v.volume_id, {
            "maxIops": "100", "maxReadBps": "1048576", "maxWriteIopsBurst": "0",
            "maxIopsBurst": "200", "maxIopsBurstSeconds": "3"}))
        self.assertEqual(image_qos(img), {"rbd_qos_iops_limit": "100",
                                          "rbd_qos_read_bps_limit": "1048576",
                                          "rbd_qos_iops_burst": "200",
                                          "rbd_qos_iops_burst_seconds": "3"})
        self.assertEqual(config_get(img, "rbd_qos_iops_limit"), "100")
        self.assertEqual(sorted(entry_qos(v.volume_id)),
                         ["qos.rbd_qos_iops_burst", "qos.rbd_qos_iops_burst_seconds",
                          "qos.rbd_qos_iops_limit", "qos.rbd_qos_read_bps_limit"])

    def test_modify__create_with_mutable_parameters(self):
        v = self.create("pvc-modify-create", {"maxWriteIops": "50", "maxWriteBps": "2000000"})
        self.assertEqual(image_qos(v.volume_context["imageName"]),
                         {"rbd_qos_write_iops_limit": "50",
                          "rbd_qos_write_bps_limit": "2000000"})
        # The retry of the same create returns the same volume with the same QoS.
        again = self.d.controller.CreateVolume(
            create_req("pvc-modify-create", {"maxWriteIops": "50",
                                             "maxWriteBps": "2000000"})).volume
        self.assertEqual(again.volume_id, v.volume_id)

    def test_modify__bad_keys_and_values_refused_naming_the_key_nothing_changed(self):
        v = self.create("pvc-modify-bad", {"maxIops": "10"})
        img = v.volume_context["imageName"]
        before = (image_qos(img), entry_qos(v.volume_id))
        cases = [
            ({"maxIops": "20", "XXX_FakeKey": "1"}, "XXX_FakeKey"),
            ({"maxIops": "20", "rbd_qos_iops_limit": "5"}, "rbd_qos_iops_limit"),
            ({"maxReadIops": "-1"}, "maxReadIops"),
            ({"maxReadIops": "+5"}, "maxReadIops"),
            ({"maxReadIops": " 5"}, "maxReadIops"),
            ({"maxReadIops": "1e3"}, "maxReadIops"),
            ({"maxReadIops": ""}, "maxReadIops"),
            ({"maxBps": "99999999999999999999999"}, "maxBps"),
            ({"maxBps": "1000000000000001"}, "maxBps"),
            ({"maxIopsBurstSeconds": "3601"}, "maxIopsBurstSeconds"),
            # A burst below its limit (librbd would refuse it): against the recorded 10.
            ({"maxIopsBurst": "5"}, "maxIopsBurst"),
            ({"maxIops": "20", "maxIopsBurst": "15"}, "maxIopsBurst"),
        ]
        for mutable, key in cases:
            with self.subTest(mutable=mutable):
                code, msg = code_of(self.d.controller.ControllerModifyVolume,
                                    modify_req(v.volume_id, mutable))
                self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
                self.assertIn(key, msg)
                self.assertEqual((image_qos(img), entry_qos(v.volume_id)), before)
        # At create: refused before anything exists.
        code, msg = code_of(self.d.controller.CreateVolume,
                            create_req("pvc-modify-bad-create", {"maxIops": "x"}))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.assertIn("maxIops", msg)
        code, _ = code_of(self.d.controller.CreateVolume,
                          create_req("pvc-modify-bad-create2", {"nope": "1"}))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        images = ceph_cli("rbd", "ls", ceph()["pool"]).split()
        self.assertEqual(len([i for i in images if i.startswith("csi-vol-")]),
                         len(self.vols))

    def test_modify__idempotent_only_given_keys_change_zero_removes(self):
        v = self.create("pvc-modify-idem")
        img = v.volume_context["imageName"]
        for _ in range(2):
            self.d.controller.ControllerModifyVolume(modify_req(v.volume_id, {"maxIops": "30"}))
            self.assertEqual(image_qos(img), {"rbd_qos_iops_limit": "30"})
        # Another key: the first stays (CSI: absent keys change nothing; ceph-csi #6443).
        self.d.controller.ControllerModifyVolume(modify_req(v.volume_id, {"maxBps": "4096"}))
        self.assertEqual(image_qos(img), {"rbd_qos_iops_limit": "30",
                                          "rbd_qos_bps_limit": "4096"})
        # No key at all: nothing changes.
        self.d.controller.ControllerModifyVolume(modify_req(v.volume_id, {}))
        self.assertEqual(image_qos(img), {"rbd_qos_iops_limit": "30",
                                          "rbd_qos_bps_limit": "4096"})
        self.d.controller.ControllerModifyVolume(modify_req(v.volume_id, {"maxIops": "0"}))
        self.assertEqual(image_qos(img), {"rbd_qos_bps_limit": "4096"})
        self.assertEqual(entry_qos(v.volume_id), ["qos.rbd_qos_bps_limit"])
        # An override someone set by hand is brought back to what the volume records.
        ceph_cli("rbd", "config", "image", "set", "%s/%s" % (ceph()["pool"], img),
                 "rbd_qos_bps_limit", "1")
        self.d.controller.ControllerModifyVolume(modify_req(v.volume_id, {"maxBps": "4096"}))
        self.assertEqual(image_qos(img), {"rbd_qos_bps_limit": "4096"})

    def test_modify__publish_context_carries_the_limits_for_krbd_nodes(self):
        v = self.create("pvc-modify-publish", {"maxReadIops": "40", "maxBps": "8192"})
        self.d.controller.ControllerModifyVolume(modify_req(v.volume_id, {"maxWriteIops": "9"}))
        try:
            r = self.d.controller.ControllerPublishVolume(csi.ControllerPublishVolumeRequest(
                volume_id=v.volume_id, node_id="qos-node", volume_capability=mount_cap(),
                secrets=secrets()))
            self.assertEqual(dict(r.publish_context), {
                "readOnly": "false", "qos.maxReadIops": "40", "qos.maxWriteIops": "9",
                "qos.maxBps": "8192"})
        finally:
            self.d.controller.ControllerUnpublishVolume(csi.ControllerUnpublishVolumeRequest(
                volume_id=v.volume_id, node_id="qos-node", secrets=secrets()))

    def test_modify__clone_and_restore_start_with_their_own_limits(self):
        """librbd copies image metadata into a clone, so a clone or restore of a limited volume
        would silently carry its source's limits that nothing records; CreateVolume makes the
        new image's overrides equal to what it asked for."""
        src = self.create("pvc-modify-src", {"maxIops": "11", "maxBps": "4096"})
        req = create_req("pvc-modify-clone", {"maxReadIops": "3"})
        req.volume_content_source.volume.volume_id = src.volume_id
        clone = self.d.controller.CreateVolume(req).volume
        self.vols.insert(0, clone.volume_id)
        self.assertEqual(image_qos(clone.volume_context["imageName"]),
                         {"rbd_qos_read_iops_limit": "3"})
        req = create_req("pvc-modify-clone2")
        req.volume_content_source.volume.volume_id = src.volume_id
        clone2 = self.d.controller.CreateVolume(req).volume
        self.vols.insert(0, clone2.volume_id)
        self.assertEqual(image_qos(clone2.volume_context["imageName"]), {})
        # A later modify of one key leaves no inherited limit behind either.
        self.d.controller.ControllerModifyVolume(modify_req(clone2.volume_id, {"maxIops": "5"}))
        self.assertEqual(image_qos(clone2.volume_context["imageName"]),
                         {"rbd_qos_iops_limit": "5"})
        self.assertEqual(image_qos(src.volume_context["imageName"]),
                         {"rbd_qos_iops_limit": "11", "rbd_qos_bps_limit": "4096"})

    def test_modify__missing_volume_is_not_found(self):
        code, _ = code_of(self.d.controller.ControllerModifyVolume,
                          modify_req("non-existing-volume-id", {"maxIops": "1"}))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        v = self.create("pvc-modify-gone")
        self.d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                               secrets=secrets()))
        code, _ = code_of(self.d.controller.ControllerModifyVolume,
                          modify_req(v.volume_id, {"maxIops": "1"}))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        code, _ = code_of(self.d.controller.ControllerModifyVolume,
                          modify_req("", {"maxIops": "1"}))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_modify__sigkill_at_each_step_converges_on_retry(self):
        v = self.create("pvc-modify-crash", {"maxIops": "10"})
        img = v.volume_context["imageName"]
        for n, fp in enumerate(MODIFY_FAILPOINTS):
            with self.subTest(failpoint=fp):
                want = str(100 + n)
                d = Driver(mode="controller", name="modify-crash",
                           env={"RBDCSI_FAILPOINTS": fp})
                code, _ = code_of(d.controller.ControllerModifyVolume,
                                  modify_req(v.volume_id, {"maxIops": want, "maxBps": want}),
                                  timeout=60)
                self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, fp)
                d.proc.wait(30)
                self.assertEqual(d.proc.returncode, -9, fp)  # killed at the failpoint
                d.stop()
                if fp.endswith("after-journal"):
                    # Recorded, not yet on the image: the crash window this test covers.
                    self.assertNotEqual(image_qos(img).get("rbd_qos_iops_limit"), want)
                self.d.controller.ControllerModifyVolume(
                    modify_req(v.volume_id, {"maxIops": want, "maxBps": want}))
                self.assertEqual(image_qos(img), {"rbd_qos_iops_limit": want,
                                                  "rbd_qos_bps_limit": want})
        # A retry with other values after a crash converges on the newest ones.
        d = Driver(mode="controller", name="modify-crash2",
                   env={"RBDCSI_FAILPOINTS": "volume-modify:after-journal"})
        code, _ = code_of(d.controller.ControllerModifyVolume,
                          modify_req(v.volume_id, {"maxReadIops": "7"}), timeout=60)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        d.stop()
        self.d.controller.ControllerModifyVolume(modify_req(v.volume_id, {"maxIops": "0"}))
        self.assertEqual(image_qos(img), {"rbd_qos_bps_limit": "101",
                                          "rbd_qos_read_iops_limit": "7"})

    @need_root
    def test_modify__reaches_an_open_librbd_client(self):
        """rbd-fuse holds the image open (as the fuse mapper does); a limit set afterwards
        throttles it. Only a lower bound on the time is checked: 40 writes at 10/s cannot take
        less than (40 - burst 10) / 10 = 3 s, however slow or loaded the machine is."""
        v = self.create("pvc-modify-live")
        img = v.volume_context["imageName"]
        mnt = tempfile.mkdtemp(prefix="rbdcsi-qos-fuse.")
        c = ceph()
        p = subprocess.Popen(["rbd-fuse", "-c", c["conf"], "-p", c["pool"], "-r", img, mnt,
                              "-f"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            path = os.path.join(mnt, img)
            for _ in range(200):
                if os.path.exists(path):
                    break
                time.sleep(0.05)

            def writes(n):
                t0 = time.monotonic()
                subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=4k", "count=%d" % n,
                                "oflag=direct", "conv=notrunc", "status=none"], check=True)
                return time.monotonic() - t0

            writes(5)  # the image is open and in use
            self.d.controller.ControllerModifyVolume(modify_req(v.volume_id,
                                                                {"maxWriteIops": "10"}))
            self.assertGreaterEqual(writes(40), 2.5)
        finally:
            subprocess.run(["umount", mnt], check=False)
            p.wait(30)
            os.rmdir(mnt)


if __name__ == "__main__":
    unittest.main()
