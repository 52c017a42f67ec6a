# SPDX-License-Identifier: Apache-2.0
"""Volume group snapshots (CSI GroupController) against the real Ceph, through the real binary:
two volumes written in lockstep by a librbd client (a counter to the first image, flush, the
same counter to the second, flush, over and over) are snapshotted as a group while the writes
go on; each member restores on its own to a new volume and the two restored counters belong to
one instant (first == second, or first == second + 1); the writer never sees an error (its
writes wait during the cut). Idempotency by name, the member snapshots' group id, member
deletion refused while the group exists, snapshot_ids checked, bad input with the field named;
SIGKILL at every step of create and delete, then a retry, leaves nothing behind (images, RBD
groups, RBD snapshots, trash, journal)."""
import os
import signal
import struct
import time
import unittest

import grpc

from lib import (MiB, Driver, ceph, ceph_cli, code_of, csi, csi_grpc, need_ceph, omap_keys,
                 secrets)
from test_snapshot import create_req, pool_state

try:
    import rados
    import rbd
except ImportError:  # Debian's python3-rados/python3-rbd; run with /usr/bin/python3
    rados = rbd = None


def group_stub(d):
    d.connect()
    return csi_grpc.GroupControllerStub(d.channel)


def group_req(name, ids, params=None):
    return csi.CreateVolumeGroupSnapshotRequest(name=name, source_volume_ids=ids,
                                                parameters=params or {}, secrets=secrets())


def rbd_groups(pool=None):
    out = ceph_cli("rbd", "group", "ls", pool or ceph()["pool"]).strip()
    return sorted(out.split("\n")) if out else []


def full_state():
    """pool_state() with the group snapshot directory's keys and the pool's RBD groups (an
    empty directory object is nothing left behind, as in pool_state())."""
    st = pool_state()
    d = "rbdcsi.group-snapshots"
    if d in st["objects"]:
        keys = omap_keys(d)
        if keys:
            st["directory"][d] = keys
        else:
            st["objects"].remove(d)
    st["groups"] = rbd_groups()
    return st


def open_io():
    cluster = rados.Rados(conffile=ceph()["conf"])
    cluster.connect(timeout=30)
    return cluster, cluster.open_ioctx(ceph()["pool"])


def read_counter(image):
    cluster, io = open_io()
    try:
        with rbd.Image(io, image, read_only=True) as img:
            return struct.unpack("<Q", img.read(0, 8))[0]
    finally:
        io.close()
        cluster.shutdown()


def start_lockstep_writer(images, seconds):
    """A child process that writes counter i to each image in turn, flushing after each, until
    seconds pass; exits 0 after it wrote at least once, 3 on any error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 3
        try:
            cluster, io = open_io()
            imgs = [rbd.Image(io, n) for n in images]
            i = 0
            end = time.time() + seconds
            os.write(w, b"s")
            while time.time() < end:
                i += 1
                for img in imgs:
                    img.write(struct.pack("<Q", i), 0)
                    img.flush()
            for img in imgs:
                img.close()
            io.close()
            cluster.shutdown()
            code = 0 if i > 0 else 3
        finally:
            os._exit(code)
    os.close(w)
    os.read(r, 1)  # the writer has the images open
    os.close(r)
    return pid


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Driver(mode="controller", name="group-snapshots")
        cls.g = group_stub(cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def create(self, name, size=16 * MiB, source=None):
        return self.d.controller.CreateVolume(create_req(name, size, source), timeout=120).volume

    def delete(self, vid):
        self.d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vid, secrets=secrets()),
                                       timeout=120)

    def delete_group(self, gid, ids=()):
        self.g.DeleteVolumeGroupSnapshot(csi.DeleteVolumeGroupSnapshotRequest(
            group_snapshot_id=gid, snapshot_ids=list(ids), secrets=secrets()), timeout=120)


@need_ceph
@unittest.skipIf(rbd is None, "needs python3-rbd (run with /usr/bin/python3)")
class TestGroupSnapshot(Base):
    def test_lockstep_writes__members_restore_to_one_instant(self):
        before = full_state()
        a = self.create("pvc-grp-a")
        b = self.create("pvc-grp-b")
        images = [a.volume_context["imageName"], b.volume_context["imageName"]]
        pid = start_lockstep_writer(images, 6)
        time.sleep(1.0)  # the writer is in full swing
        gs = self.g.CreateVolumeGroupSnapshot(group_req("grp-1", [a.volume_id, b.volume_id]),
                                              timeout=120).group_snapshot
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, "the writer saw an error")

        self.assertTrue(gs.ready_to_use)
        self.assertLessEqual(len(gs.group_snapshot_id), 128)
        self.assertEqual(len(gs.snapshots), 2)
        by_source = {s.source_volume_id: s for s in gs.snapshots}
        self.assertEqual(set(by_source), {a.volume_id, b.volume_id})
        for s in gs.snapshots:
            self.assertEqual(s.group_snapshot_id, gs.group_snapshot_id)
            self.assertTrue(s.ready_to_use)
            self.assertEqual(s.size_bytes, 16 * MiB)

        # Idempotent (sources in another order too), and the same through Get.
        again = self.g.CreateVolumeGroupSnapshot(
            group_req("grp-1", [b.volume_id, a.volume_id]), timeout=120).group_snapshot
        self.assertEqual(again, gs)
        got = self.g.GetVolumeGroupSnapshot(csi.GetVolumeGroupSnapshotRequest(
            group_snapshot_id=gs.group_snapshot_id, secrets=secrets())).group_snapshot
        self.assertEqual(got, gs)
        # A member is an ordinary snapshot that knows its group.
        m = self.d.controller.GetSnapshot(csi.GetSnapshotRequest(
            snapshot_id=gs.snapshots[0].snapshot_id, secrets=secrets())).snapshot
        self.assertEqual(m.group_snapshot_id, gs.group_snapshot_id)
        # Other sources under the same name.
        c = self.create("pvc-grp-c")
        code, msg = code_of(self.g.CreateVolumeGroupSnapshot,
                            group_req("grp-1", [a.volume_id, c.volume_id]))
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS, msg)

        # Each member restores on its own; the counters are of one instant.
        ra = self.create("pvc-grp-ra", source=("snapshot", by_source[a.volume_id].snapshot_id))
        rb = self.create("pvc-grp-rb", source=("snapshot", by_source[b.volume_id].snapshot_id))
        ca = read_counter(ra.volume_context["imageName"])
        cb = read_counter(rb.volume_context["imageName"])
        self.assertGreater(cb, 0)
        self.assertIn(ca - cb, (0, 1), "restored counters %d and %d are not of one instant"
                      % (ca, cb))
        # Nothing of the cut is left on the sources, and no RBD group.
        st = full_state()
        self.assertEqual(st["groups"], before["groups"])
        for img in images:
            self.assertIsNone(st["snaps"].get(img), img)

        # A member is deleted with its group, not alone; snapshot_ids must match.
        code, msg = code_of(self.d.controller.DeleteSnapshot, csi.DeleteSnapshotRequest(
            snapshot_id=gs.snapshots[0].snapshot_id, secrets=secrets()))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn(gs.group_snapshot_id, msg)
        code, msg = code_of(self.g.DeleteVolumeGroupSnapshot,
                            csi.DeleteVolumeGroupSnapshotRequest(
                                group_snapshot_id=gs.group_snapshot_id,
                                snapshot_ids=[gs.snapshots[0].snapshot_id], secrets=secrets()))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.assertIn("snapshot_ids", msg)
        for _ in range(2):
            self.delete_group(gs.group_snapshot_id, [s.snapshot_id for s in gs.snapshots])
        code, _ = code_of(self.g.GetVolumeGroupSnapshot, csi.GetVolumeGroupSnapshotRequest(
            group_snapshot_id=gs.group_snapshot_id, secrets=secrets()))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        code, _ = code_of(self.d.controller.GetSnapshot, csi.GetSnapshotRequest(
            snapshot_id=gs.snapshots[0].snapshot_id, secrets=secrets()))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        # The restored volumes live on.
        self.assertEqual(read_counter(ra.volume_context["imageName"]), ca)
        for v in (ra, rb, a, b, c):
            self.delete(v.volume_id)
        self.assertEqual(full_state(), before)

    def test_bad_input__right_code_naming_the_field(self):
        before = full_state()
        a = self.create("pvc-grp-bad")
        cases = [
            (group_req("", [a.volume_id]), grpc.StatusCode.INVALID_ARGUMENT, "name"),
            (group_req("grp-bad", []), grpc.StatusCode.INVALID_ARGUMENT, "source_volume_ids"),
            (group_req("grp-bad", [a.volume_id, ""]), grpc.StatusCode.INVALID_ARGUMENT,
             "source_volume_ids[1]"),
            (group_req("grp-bad", [a.volume_id, a.volume_id]),
             grpc.StatusCode.INVALID_ARGUMENT, "source_volume_ids[1]"),
            (group_req("grp-bad", [a.volume_id, "no-such-volume"]), grpc.StatusCode.NOT_FOUND,
             "source_volume_ids[1]"),
            # Well-formed, but no such volume: NOT_FOUND, and nothing is left behind.
            (group_req("grp-bad", [a.volume_id, a.volume_id[:-12] + "000000000000"]),
             grpc.StatusCode.NOT_FOUND, "source_volume_ids"),
            (group_req("grp-bad", [a.volume_id], params={"pool": "x"}),
             grpc.StatusCode.INVALID_ARGUMENT, "parameters"),
            (group_req("rbdcsi-group:x", [a.volume_id]), grpc.StatusCode.INVALID_ARGUMENT,
             "name"),
        ]
        for req, want, field in cases:
            code, msg = code_of(self.g.CreateVolumeGroupSnapshot, req)
            self.assertEqual(code, want, (req.name, list(req.source_volume_ids), msg))
            self.assertIn(field, msg)
        code, msg = code_of(self.d.controller.CreateSnapshot, csi.CreateSnapshotRequest(
            name="rbdcsi-group:x:0", source_volume_id=a.volume_id, secrets=secrets()))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        code, msg = code_of(self.g.GetVolumeGroupSnapshot, csi.GetVolumeGroupSnapshotRequest())
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.assertIn("group_snapshot_id", msg)
        code, msg = code_of(self.g.GetVolumeGroupSnapshot, csi.GetVolumeGroupSnapshotRequest(
            group_snapshot_id="nope"))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND, msg)
        code, msg = code_of(self.g.DeleteVolumeGroupSnapshot,
                            csi.DeleteVolumeGroupSnapshotRequest())
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.delete_group("nope")  # not ours: deleted
        caps = self.g.GroupControllerGetCapabilities(csi.GroupControllerGetCapabilitiesRequest())
        self.assertEqual([c.rpc.type for c in caps.capabilities], [
            csi.GroupControllerServiceCapability.RPC.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT])
        pc = self.d.identity.GetPluginCapabilities(csi.GetPluginCapabilitiesRequest())
        self.assertIn(csi.PluginCapability.Service.GROUP_CONTROLLER_SERVICE,
                      [c.service.type for c in pc.capabilities])
        self.delete(a.volume_id)
        self.assertEqual(full_state(), before)


@need_ceph
@unittest.skipIf(rbd is None, "needs python3-rbd (run with /usr/bin/python3)")
class TestGroupSnapshotCopyResumes(Base):
    """A copy that stops at the deadline (here: after every 4 MiB chunk, by a test-only
    failpoint) answers ABORTED and the retries resume it: the member data is exact."""

    @classmethod
    def setUpClass(cls):
        cls.d = Driver(mode="controller", name="group-copy",
                       env={"RBDCSI_FAILPOINTS": "group-snapshot-copy:one-chunk"})
        cls.g = group_stub(cls.d)

    def test_copy_stops_at_deadline_and_resumes(self):
        before = full_state()
        vols = [self.create("pvc-grp-copy-%d" % i, 32 * MiB) for i in range(2)]
        data = [os.urandom(12 * MiB) for _ in vols]
        cluster, io = open_io()
        try:
            for v, blob in zip(vols, data):
                with rbd.Image(io, v.volume_context["imageName"]) as img:
                    img.write(blob, 4 * MiB)
        finally:
            io.close()
            cluster.shutdown()
        req = group_req("grp-copy", [v.volume_id for v in vols])
        aborted = 0
        for _ in range(30):
            code, msg = code_of(self.g.CreateVolumeGroupSnapshot, req, timeout=120)
            if code == grpc.StatusCode.OK:
                break
            self.assertEqual(code, grpc.StatusCode.ABORTED, msg)
            self.assertIn("copied", msg)
            aborted += 1
        gs = self.g.CreateVolumeGroupSnapshot(req, timeout=120).group_snapshot
        self.assertGreaterEqual(aborted, 4)  # 3 chunks per member, one per call
        by_source = {s.source_volume_id: s.snapshot_id for s in gs.snapshots}
        restored = [self.create("pvc-grp-copy-r%d" % i, 32 * MiB,
                                source=("snapshot", by_source[v.volume_id]))
                    for i, v in enumerate(vols)]
        cluster, io = open_io()
        try:
            for r, blob in zip(restored, data):
                with rbd.Image(io, r.volume_context["imageName"], read_only=True) as img:
                    self.assertEqual(img.read(4 * MiB, 12 * MiB), blob)
                    self.assertEqual(img.read(0, 4 * MiB), bytes(4 * MiB))
        finally:
            io.close()
            cluster.shutdown()
        self.delete_group(gs.group_snapshot_id)
        for v in restored + vols:
            self.delete(v.volume_id)
        self.assertEqual(full_state(), before)


# ---- crash safety ----

GROUP_CREATE_FAILPOINTS = [
    "group-snapshot-create:after-reserve", "group-snapshot-create:after-object",
    "group-snapshot-create:after-group", "group-snapshot-create:after-cut",
    "group-snapshot-create:after-record-cut", "group-snapshot-create:after-member-copy",
    "group-snapshot-create:after-member", "group-snapshot-create:after-ungroup",
]
GROUP_DELETE_FAILPOINTS = [
    "group-snapshot-delete:after-mark", "group-snapshot-delete:after-members",
    "group-snapshot-delete:after-ungroup", "group-snapshot-delete:after-unreserve",
]


@need_ceph
@unittest.skipIf(rbd is None, "needs python3-rbd (run with /usr/bin/python3)")
class TestGroupCrashSafety(unittest.TestCase):
    def killed(self, fp, method, req):
        d = Driver(mode="controller", name="crash-group", env={"RBDCSI_FAILPOINTS": fp})
        code, msg = code_of(getattr(group_stub(d), method), req, timeout=120)
        d.proc.wait(30)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, (fp, msg))
        self.assertEqual(d.proc.returncode, -signal.SIGKILL, fp)  # killed at the failpoint
        d.stop()

    def test_crash__each_step_then_retry_converges(self):
        d = Driver(mode="controller", name="crash-group-setup")
        vols = [d.controller.CreateVolume(create_req("pvc-gc-%d" % i, 8 * MiB)).volume
                for i in range(2)]
        d.stop()
        ids = [v.volume_id for v in vols]
        baseline = full_state()
        for fp in GROUP_CREATE_FAILPOINTS:
            req = group_req("grp-crash", ids)
            self.killed(fp, "CreateVolumeGroupSnapshot", req)
            d = Driver(mode="controller", name="crash-group-retry")
            gs = group_stub(d).CreateVolumeGroupSnapshot(req, timeout=120).group_snapshot
            self.assertTrue(gs.ready_to_use, fp)
            self.assertEqual(len(gs.snapshots), 2, fp)
            st = full_state()
            self.assertEqual(len(st["images"]), len(baseline["images"]) + 2, fp)
            self.assertEqual(st["groups"], baseline["groups"], fp)
            self.assertEqual(st["trash"], baseline["trash"], fp)
            for v in vols:
                self.assertIsNone(st["snaps"].get(v.volume_context["imageName"]), fp)
            group_stub(d).DeleteVolumeGroupSnapshot(csi.DeleteVolumeGroupSnapshotRequest(
                group_snapshot_id=gs.group_snapshot_id, secrets=secrets()), timeout=120)
            d.stop()
            self.assertEqual(full_state(), baseline, fp)

        for fp in GROUP_DELETE_FAILPOINTS:
            d = Driver(mode="controller", name="crash-group-setup")
            gs = group_stub(d).CreateVolumeGroupSnapshot(group_req("grp-crash-del", ids),
                                                         timeout=120).group_snapshot
            d.stop()
            req = csi.DeleteVolumeGroupSnapshotRequest(
                group_snapshot_id=gs.group_snapshot_id,
                snapshot_ids=[s.snapshot_id for s in gs.snapshots], secrets=secrets())
            self.killed(fp, "DeleteVolumeGroupSnapshot", req)
            d = Driver(mode="controller", name="crash-group-retry")
            group_stub(d).DeleteVolumeGroupSnapshot(req, timeout=120)
            d.stop()
            self.assertEqual(full_state(), baseline, fp)

        d = Driver(mode="controller", name="crash-group-setup")
        for v in vols:
            d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                              secrets=secrets()))
        d.stop()


if __name__ == "__main__":
    unittest.main()
