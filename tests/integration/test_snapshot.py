# SPDX-License-Identifier: Apache-2.0
"""Snapshots and clones against the real Ceph, through the real binary: data written through the
node service (rbd-fuse mapper, as root) survives snapshot -> overwrite -> restore and clones of a
live volume; a snapshot outlives its source and can be deleted under its restored volumes; a
chain of 20 clone-of-clone volumes stays within the clone-depth limit with every link reading
its data; a flatten that overruns the call's deadline answers ABORTED and the retry continues it;
SIGKILL at every step of CreateSnapshot, DeleteSnapshot and clone creation, then a retry, leaves
nothing behind (images, RBD snapshots, trash, journal); bad input gets the right code."""
import hashlib
import os
import time
import unittest

import grpc

from lib import (MiB, Driver, ceph, ceph_cli, code_of, csi, journal_state, mount_cap, need_ceph,
                 need_root, sc_params, secrets)
from test_node import Node, loops_of, mounts_below, quietly

try:
    import rados
    import rbd
except ImportError:  # Debian's python3-rados/python3-rbd; run with /usr/bin/python3
    rados = rbd = None


# ---- looking at the pool directly (client.admin) ----

def pool_state(pool=None):
    """Everything the driver may leave in a pool: images, trash, RBD snapshots (all namespaces),
    journal objects and directory keys."""
    pool = pool or ceph()["pool"]
    st = journal_state(pool)
    # An empty directory object is nothing left behind: the first volume of a fresh pool
    # creates it, and it stays (so a test that runs first would otherwise see a difference).
    empty = [o for o, keys in st["directory"].items() if not keys]
    for o in empty:
        del st["directory"][o]
    st["objects"] = [o for o in st["objects"] if o not in empty]
    st["trash"] = sorted(ceph_cli("rbd", "trash", "ls", pool).split("\n"))
    snaps = {}
    for img in st["images"]:
        out = ceph_cli("rbd", "snap", "ls", "--all", "%s/%s" % (pool, img)).strip()
        if out:
            snaps[img] = out.count("\n")  # lines after the header
    st["snaps"] = snaps
    return st


class Rbd:
    """Direct librbd access for data checks and clone depths (python3-rbd)."""

    def __init__(self):
        self.cluster = rados.Rados(conffile=ceph()["conf"])
        self.cluster.connect(timeout=30)
        self.io = self.cluster.open_ioctx(ceph()["pool"])

    def close(self):
        self.io.close()
        self.cluster.shutdown()

    def write(self, image, off, data):
        with rbd.Image(self.io, image) as img:
            img.write(data, off)
            img.flush()

    def read(self, image, off, length):
        with rbd.Image(self.io, image, read_only=True) as img:
            return img.read(off, length)

    def depth(self, image):
        """Parents above the image, following each image's head (our images are flattened
        before anything hangs from them, so head and snapshots agree)."""
        d = 0
        img = rbd.Image(self.io, image, read_only=True)
        try:
            while True:
                try:
                    pid = img.parent_id()
                except rbd.ImageNotFound:
                    return d
                spec = img.get_parent_image_spec()
                img.close()
                pio = self.cluster.open_ioctx(spec["pool_name"])
                pio.set_namespace(spec["pool_namespace"])
                img = rbd.Image(pio, image_id=pid, read_only=True)
                d += 1
        finally:
            img.close()


def create_req(name, size=32 * MiB, source=None, params=None, limit=0, caps=None):
    src = None
    if source is not None:
        kind, sid = source
        if kind == "snapshot":
            src = csi.VolumeContentSource(
                snapshot=csi.VolumeContentSource.SnapshotSource(snapshot_id=sid))
        else:
            src = csi.VolumeContentSource(
                volume=csi.VolumeContentSource.VolumeSource(volume_id=sid))
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=size, limit_bytes=limit),
        volume_capabilities=caps or [mount_cap()], parameters=params or sc_params(mounter="fuse"),
        secrets=secrets(), volume_content_source=src)


def snap_req(name, source_id, params=None):
    return csi.CreateSnapshotRequest(name=name, source_volume_id=source_id,
                                     parameters=params or {}, secrets=secrets())


class Base(unittest.TestCase):
    driver_args = ()
    driver_env = None

    @classmethod
    def setUpClass(cls):
        cls.d = Driver(*cls.driver_args, mode="controller", name="snapshots",
                       env=cls.driver_env)
        cls.rbd = Rbd() if rbd else None

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        if cls.rbd:
            cls.rbd.close()

    def create(self, name, size=32 * MiB, source=None, d=None, **kw):
        r = (d or self.d).controller.CreateVolume(create_req(name, size, source, **kw), timeout=120)
        return r.volume

    def snapshot(self, name, source_id, d=None):
        return (d or self.d).controller.CreateSnapshot(snap_req(name, source_id),
                                                       timeout=120).snapshot

    def delete(self, vid, d=None):
        (d or self.d).controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vid,
                                                                      secrets=secrets()),
                                              timeout=120)

    def delete_snapshot(self, sid, d=None):
        (d or self.d).controller.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=sid,
                                                                          secrets=secrets()),
                                                timeout=120)


@need_ceph
class TestSnapshotController(Base):
    def test_create__idempotent_reported_listed(self):
        before = pool_state()
        v = self.create("pvc-snap-src", 48 * MiB)
        other = self.create("pvc-snap-other", 16 * MiB)
        t0 = time.time()
        s1 = self.snapshot("snap-1", v.volume_id)
        s2 = self.snapshot("snap-1", v.volume_id)
        self.assertEqual(s1.snapshot_id, s2.snapshot_id)
        self.assertEqual(s1.creation_time, s2.creation_time)
        self.assertLessEqual(len(s1.snapshot_id), 128)
        self.assertEqual(s1.source_volume_id, v.volume_id)
        self.assertEqual(s1.size_bytes, 48 * MiB)
        self.assertTrue(s1.ready_to_use)
        self.assertLess(abs(s1.creation_time.seconds - t0), 30)
        code, msg = code_of(self.d.controller.CreateSnapshot,
                            snap_req("snap-1", other.volume_id))
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS, msg)

        g = self.d.controller.GetSnapshot(csi.GetSnapshotRequest(snapshot_id=s1.snapshot_id,
                                                                 secrets=secrets())).snapshot
        self.assertEqual(g, s1)
        by_id = self.d.controller.ListSnapshots(csi.ListSnapshotsRequest(
            snapshot_id=s1.snapshot_id, secrets=secrets()))
        self.assertEqual([e.snapshot for e in by_id.entries], [s1])
        by_src = self.d.controller.ListSnapshots(csi.ListSnapshotsRequest(
            source_volume_id=v.volume_id, secrets=secrets()))
        self.assertEqual([e.snapshot for e in by_src.entries], [s1])
        none = self.d.controller.ListSnapshots(csi.ListSnapshotsRequest(
            source_volume_id=other.volume_id))
        self.assertEqual(list(none.entries), [])
        every = self.d.controller.ListSnapshots(csi.ListSnapshotsRequest())
        self.assertIn(s1.snapshot_id, [e.snapshot.snapshot_id for e in every.entries])

        # The source carries no user snapshot: the temporary one went to the trash namespace.
        st = pool_state()
        self.assertEqual(len(st["images"]), len(before["images"]) + 3)
        self.assertEqual(st["trash"], before["trash"])
        for _ in range(2):
            self.delete_snapshot(s1.snapshot_id)
        code, _ = code_of(self.d.controller.GetSnapshot,
                          csi.GetSnapshotRequest(snapshot_id=s1.snapshot_id))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.delete(v.volume_id)
        self.delete(other.volume_id)
        self.assertEqual(pool_state(), before)

    def test_list__paginates_and_bad_token_aborts(self):
        v = self.create("pvc-snap-list", 8 * MiB)
        ids = [self.snapshot("snap-list-%d" % i, v.volume_id).snapshot_id for i in range(5)]
        for req in (csi.ListSnapshotsRequest, lambda **kw: csi.ListSnapshotsRequest(
                source_volume_id=v.volume_id, **kw)):
            seen, token, pages = [], "", 0
            while True:
                r = self.d.controller.ListSnapshots(req(max_entries=2, starting_token=token))
                self.assertLessEqual(len(r.entries), 2)
                seen += [e.snapshot.snapshot_id for e in r.entries]
                pages += 1
                token = r.next_token
                if not token:
                    break
            for sid in ids:
                self.assertIn(sid, seen)
            self.assertEqual(len(seen), len(set(seen)))
            self.assertGreaterEqual(pages, 3)
        for token in ("bogus", "test|rbd||zz", "test|nosuchpool||"):
            code, _ = code_of(self.d.controller.ListSnapshots,
                              csi.ListSnapshotsRequest(starting_token=token))
            self.assertEqual(code, grpc.StatusCode.ABORTED, token)
        code, _ = code_of(self.d.controller.ListSnapshots,
                          csi.ListSnapshotsRequest(max_entries=-1))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        for sid in ids:
            self.delete_snapshot(sid)
        self.delete(v.volume_id)

    def test_bad_input__right_code_field_named_pool_unchanged(self):
        v = self.create("pvc-snap-bad", 16 * MiB)
        s = self.snapshot("snap-bad-ok", v.volume_id)
        before = pool_state()
        ctl = self.d.controller
        fake_vol = "0001-v-04-test-0000000000000001-00--12345678-1234-4234-8234-123456789abc"
        fake_snap = fake_vol.replace("-v-", "-s-")
        cases = [
            (ctl.CreateSnapshot, snap_req("", v.volume_id), grpc.StatusCode.INVALID_ARGUMENT,
             "name"),
            (ctl.CreateSnapshot, snap_req("snap-b1", ""), grpc.StatusCode.INVALID_ARGUMENT,
             "source_volume_id"),
            (ctl.CreateSnapshot, snap_req("x" * 2000, v.volume_id),
             grpc.StatusCode.INVALID_ARGUMENT, "name"),
            (ctl.CreateSnapshot, snap_req("snap-b2", "garbage"), grpc.StatusCode.NOT_FOUND,
             "source_volume_id"),
            (ctl.CreateSnapshot, snap_req("snap-b3", fake_vol), grpc.StatusCode.NOT_FOUND,
             "source"),
            (ctl.CreateSnapshot, snap_req("snap-b4", s.snapshot_id), grpc.StatusCode.NOT_FOUND,
             "source_volume_id"),
            (ctl.CreateSnapshot, snap_req("snap-b5", v.volume_id, {"snapshotPool": "x"}),
             grpc.StatusCode.INVALID_ARGUMENT, "snapshotPool"),
            (ctl.CreateSnapshot, snap_req("snap-b6", v.volume_id, {"clusterID": "other"}),
             grpc.StatusCode.INVALID_ARGUMENT, "clusterID"),
            (ctl.CreateSnapshot, snap_req("snap-b7", v.volume_id, {"pool": "rbd2"}),
             grpc.StatusCode.INVALID_ARGUMENT, "pool"),
            (ctl.DeleteSnapshot, csi.DeleteSnapshotRequest(), grpc.StatusCode.INVALID_ARGUMENT,
             "snapshot_id"),
            (ctl.GetSnapshot, csi.GetSnapshotRequest(), grpc.StatusCode.INVALID_ARGUMENT,
             "snapshot_id"),
            (ctl.GetSnapshot, csi.GetSnapshotRequest(snapshot_id="garbage"),
             grpc.StatusCode.NOT_FOUND, "snapshot_id"),
            (ctl.GetSnapshot, csi.GetSnapshotRequest(snapshot_id=fake_snap),
             grpc.StatusCode.NOT_FOUND, "snapshot"),
            (ctl.CreateVolume, create_req("pvc-b1", source=("snapshot", "garbage")),
             grpc.StatusCode.NOT_FOUND, "snapshot_id"),
            (ctl.CreateVolume, create_req("pvc-b2", source=("snapshot", fake_snap)),
             grpc.StatusCode.NOT_FOUND, "snapshot"),
            (ctl.CreateVolume, create_req("pvc-b3", source=("volume", fake_vol)),
             grpc.StatusCode.NOT_FOUND, "volume"),
            (ctl.CreateVolume, create_req("pvc-b4", source=("volume", s.snapshot_id)),
             grpc.StatusCode.NOT_FOUND, "volume_id"),
            (ctl.CreateVolume, create_req("pvc-b5", source=("snapshot", "")),
             grpc.StatusCode.INVALID_ARGUMENT, "snapshot_id"),
            (ctl.CreateVolume, create_req("pvc-b6", 8 * MiB, source=("snapshot", s.snapshot_id)),
             grpc.StatusCode.OUT_OF_RANGE, "capacity_range"),
            (ctl.CreateVolume, create_req("pvc-b7", 0, source=("volume", v.volume_id),
                                          limit=8 * MiB),
             grpc.StatusCode.OUT_OF_RANGE, "capacity_range"),
            # The source is in cluster "test"; the volume would be in "test-ns".
            (ctl.CreateVolume, create_req("pvc-b8", source=("snapshot", s.snapshot_id),
                                          params=sc_params(clusterID="test-ns")),
             grpc.StatusCode.INVALID_ARGUMENT, "cluster 'test'"),
        ]
        for fn, req, want, field in cases:
            code, msg = code_of(fn, req, timeout=60)
            self.assertEqual(code, want, (getattr(req, "name", ""), msg))
            self.assertIn(field, msg, (getattr(req, "name", ""), msg))
        for sid in ("garbage", fake_snap, v.volume_id, "x" * 200):
            ctl.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=sid, secrets=secrets()))
        r = ctl.ListSnapshots(csi.ListSnapshotsRequest(snapshot_id="garbage"))
        self.assertEqual(list(r.entries), [])
        r = ctl.ListSnapshots(csi.ListSnapshotsRequest(snapshot_id=fake_snap))
        self.assertEqual(list(r.entries), [])
        r = ctl.ListSnapshots(csi.ListSnapshotsRequest(source_volume_id="garbage"))
        self.assertEqual(list(r.entries), [])
        self.assertEqual(pool_state(), before)
        self.delete_snapshot(s.snapshot_id)
        self.delete(v.volume_id)

    def test_clone__sizes_and_content_source(self):
        v = self.create("pvc-clone-src", 16 * MiB)
        s = self.snapshot("snap-sizes", v.volume_id)
        r = self.d.controller.CreateVolume(create_req("pvc-clone-default", 0,
                                                      source=("snapshot", s.snapshot_id)))
        self.assertEqual(r.volume.capacity_bytes, 16 * MiB)
        self.assertEqual(r.volume.content_source.snapshot.snapshot_id, s.snapshot_id)
        big = self.d.controller.CreateVolume(create_req("pvc-clone-big", 40 * MiB,
                                                        source=("volume", v.volume_id)))
        self.assertEqual(big.volume.capacity_bytes, 40 * MiB)
        self.assertEqual(big.volume.content_source.volume.volume_id, v.volume_id)
        # Idempotent; the same name with another source is ALREADY_EXISTS.
        again = self.d.controller.CreateVolume(create_req("pvc-clone-big", 40 * MiB,
                                                          source=("volume", v.volume_id)))
        self.assertEqual(again.volume.volume_id, big.volume.volume_id)
        code, _ = code_of(self.d.controller.CreateVolume,
                          create_req("pvc-clone-big", 40 * MiB, source=("snapshot",
                                                                        s.snapshot_id)))
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        for vid in (big.volume.volume_id, r.volume.volume_id):
            self.delete(vid)
        self.delete_snapshot(s.snapshot_id)
        self.delete(v.volume_id)

    @unittest.skipUnless(rbd, "needs python3-rbd")
    def test_lifecycle__snapshot_outlives_source_restored_outlives_snapshot(self):
        before = pool_state()
        v = self.create("pvc-mortal", 16 * MiB)
        img = v.volume_context["imageName"]
        self.rbd.write(img, 0, b"M" * 4096)
        s = self.snapshot("snap-survivor", v.volume_id)
        self.delete(v.volume_id)  # the source goes first
        st = pool_state()
        self.assertNotIn(img, st["images"])
        self.assertEqual(len(st["trash"]), len(before["trash"]) + 1)
        r = self.create("pvc-from-orphan", 0, source=("snapshot", s.snapshot_id))
        self.assertEqual(self.rbd.read(r.volume_context["imageName"], 0, 4096), b"M" * 4096)
        self.delete_snapshot(s.snapshot_id)  # the snapshot goes under its restored volume
        rimg = r.volume_context["imageName"]
        self.rbd.write(rimg, 8192, b"W" * 4096)
        self.assertEqual(self.rbd.read(rimg, 0, 4096), b"M" * 4096)
        self.assertEqual(self.rbd.read(rimg, 8192, 4096), b"W" * 4096)
        self.assertEqual(len(pool_state()["trash"]), len(before["trash"]) + 2)
        self.delete(r.volume_id)
        self.assertEqual(pool_state(), before)  # the whole chain left the trash

    @unittest.skipUnless(rbd, "needs python3-rbd")
    def test_chain__20_clone_of_clone_volumes_within_limit(self):
        before = pool_state()
        t0 = time.time()
        vols = [self.create("pvc-chain-00", 16 * MiB)]
        self.rbd.write(vols[0].volume_context["imageName"], 0, bytes([1]) * 4096)
        depths = [0]
        for i in range(1, 21):
            v = self.create("pvc-chain-%02d" % i, 0, source=("volume", vols[-1].volume_id))
            img = v.volume_context["imageName"]
            self.rbd.write(img, i * 64 * 1024, bytes([i + 1]) * 4096)
            depths.append(self.rbd.depth(img))
            vols.append(v)
        took = time.time() - t0
        print("\n    20 clone-of-clone volumes: %.1fs, depths %s" % (took, depths))
        self.assertLessEqual(max(depths), 4)  # --clone-depth-soft default
        self.assertEqual(max(depths), 4)
        for i, v in enumerate(vols):
            img = v.volume_context["imageName"]
            for j in range(i + 1):
                self.assertEqual(self.rbd.read(img, j * 64 * 1024, 4096), bytes([j + 1]) * 4096,
                                 (i, j))
            if i < 20:
                self.assertEqual(self.rbd.read(img, (i + 1) * 64 * 1024, 4096), bytes(4096))
        for v in vols:  # from the root down: each goes to the trash, the last empties it
            self.delete(v.volume_id)
        self.assertEqual(pool_state(), before)


@need_ceph
class TestFlattenDeadline(Base):
    driver_args = ("--clone-depth-soft=1", "--clone-depth-hard=2")
    # Every flatten starts 3 s late, so it outlasts a 1 s call on any machine.
    driver_env = {"RBDCSI_FAILPOINTS": "flatten:slow"}

    @unittest.skipUnless(rbd, "needs python3-rbd")
    def test_flatten__deadline_aborts_and_retry_continues(self):
        before = pool_state()
        a = self.create("pvc-flat-a", 768 * MiB)
        t0 = time.time()
        chunk = os.urandom(4 * MiB)
        img = a.volume_context["imageName"]
        with rbd.Image(self.rbd.io, img) as im:
            for off in range(0, 768 * MiB, 4 * MiB):
                im.write(chunk, off)
            im.flush()
        write_s = time.time() - t0
        b = self.create("pvc-flat-b", 0, source=("volume", a.volume_id))  # depth 1: kept
        self.assertEqual(self.rbd.depth(b.volume_context["imageName"]), 1)

        # depth 2 > 1: flattened, which takes longer than this call may.
        t0 = time.time()
        code, msg = code_of(self.d.controller.CreateVolume,
                            create_req("pvc-flat-c", 0, source=("volume", b.volume_id)),
                            timeout=1.0)
        first_s = time.time() - t0
        self.assertEqual(code, grpc.StatusCode.ABORTED, msg)
        self.assertIn("flattened", msg)
        self.assertLess(first_s, 1.0)  # answered before the client's deadline
        t0 = time.time()
        c = self.create("pvc-flat-c", 0, source=("volume", b.volume_id))
        retry_s = time.time() - t0
        print("\n    wrote 768 MiB in %.1fs; first call ABORTED after %.2fs; retry done after "
              "%.2fs more" % (write_s, first_s, retry_s))
        self.assertIn("Waiting for the running flatten", self.d.log_text())
        cimg = c.volume_context["imageName"]
        self.assertEqual(self.rbd.depth(cimg), 0)
        self.assertEqual(self.rbd.read(cimg, 764 * MiB, 4 * MiB), chunk)

        # A snapshot that needs a flatten is reported not ready, then ready.
        s = self.d.controller.CreateSnapshot(snap_req("snap-flat", b.volume_id),
                                             timeout=1.0).snapshot
        self.assertFalse(s.ready_to_use)
        got = self.d.controller.GetSnapshot(csi.GetSnapshotRequest(snapshot_id=s.snapshot_id))
        self.assertFalse(got.snapshot.ready_to_use)
        for _ in range(600):
            s2 = self.d.controller.CreateSnapshot(snap_req("snap-flat", b.volume_id),
                                                  timeout=5).snapshot
            if s2.ready_to_use:
                break
        self.assertTrue(s2.ready_to_use)
        self.assertEqual(s2.snapshot_id, s.snapshot_id)
        self.assertEqual(s2.creation_time, s.creation_time)
        self.delete_snapshot(s.snapshot_id)
        for v in (c, b, a):
            self.delete(v.volume_id)
        self.assertEqual(pool_state(), before)


# ---- crash safety ----

SNAPSHOT_CREATE_FAILPOINTS = [
    "snapshot-create:after-reserve", "snapshot-create:after-object",
    "snapshot-create:after-source-snap", "snapshot-create:after-clone",
    "snapshot-create:after-record", "snapshot-create:after-source-unsnap",
    "snapshot-create:after-flatten", "snapshot-create:after-restore-point",
]
SNAPSHOT_DELETE_FAILPOINTS = [
    "snapshot-delete:after-mark", "snapshot-delete:after-unsnap", "snapshot-delete:after-image",
    "snapshot-gc:after-remove", "snapshot-delete:after-unreserve",
]
CLONE_FAILPOINTS = [
    "volume-create:after-reserve", "volume-create:after-object",
    "volume-clone:after-source-snap", "volume-clone:after-clone",
    "volume-clone:after-source-unsnap", "volume-clone:after-resize",
    "volume-clone:after-flatten",
]
DEPTH = ("--clone-depth-soft=1",)  # every new clone of a clone is flattened: all steps run


@need_ceph
class TestCrashSafety(unittest.TestCase):
    def killed(self, fp, call, req):
        d = Driver(*DEPTH, mode="controller", name="crash-snap", env={"RBDCSI_FAILPOINTS": fp})
        code, msg = code_of(call(d), req, timeout=120)
        d.proc.wait(30)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, (fp, msg))
        self.assertEqual(d.proc.returncode, -9, fp)  # killed at the failpoint
        d.stop()

    def test_crash__create_snapshot_each_step_then_retry(self):
        d = Driver(*DEPTH, mode="controller", name="crash-setup")
        base = d.controller.CreateVolume(create_req("pvc-cs-base", 16 * MiB)).volume
        src = d.controller.CreateVolume(create_req("pvc-cs-src", 0,
                                                   source=("volume", base.volume_id))).volume
        d.stop()
        baseline = pool_state()
        for fp in SNAPSHOT_CREATE_FAILPOINTS:
            req = snap_req("snap-crash", src.volume_id)
            self.killed(fp, lambda d: d.controller.CreateSnapshot, req)
            d = Driver(*DEPTH, mode="controller", name="crash-retry")
            s = d.controller.CreateSnapshot(req, timeout=120).snapshot
            self.assertTrue(s.ready_to_use, fp)
            st = pool_state()
            self.assertEqual(len(st["images"]), len(baseline["images"]) + 1, fp)
            self.assertEqual(st["trash"], baseline["trash"], fp)
            self.assertEqual(st["snaps"].get(src.volume_context["imageName"]), None, fp)
            d.controller.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=s.snapshot_id,
                                                                  secrets=secrets()))
            d.stop()
            self.assertEqual(pool_state(), baseline, fp)
        d = Driver(mode="controller", name="crash-cleanup")
        for v in (src, base):
            d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                              secrets=secrets()))
        d.stop()

    def test_crash__delete_snapshot_each_step_then_retry(self):
        """The snapshot's source is deleted (trashed) and a restored volume hangs from the
        snapshot; the snapshot delete is killed at each step, retried, then the restored volume
        goes: nothing may stay in the trash."""
        baseline = pool_state()
        for fp in SNAPSHOT_DELETE_FAILPOINTS:
            restored = fp != "snapshot-gc:after-remove"  # else nothing to collect
            d = Driver(mode="controller", name="crash-setup")
            v = d.controller.CreateVolume(create_req("pvc-ds-src", 16 * MiB)).volume
            s = d.controller.CreateSnapshot(snap_req("snap-ds", v.volume_id)).snapshot
            r = d.controller.CreateVolume(create_req(
                "pvc-ds-restored", 0, source=("snapshot", s.snapshot_id))).volume \
                if restored else None
            d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                              secrets=secrets()))
            d.stop()
            req = csi.DeleteSnapshotRequest(snapshot_id=s.snapshot_id, secrets=secrets())
            self.killed(fp, lambda d: d.controller.DeleteSnapshot, req)
            d = Driver(mode="controller", name="crash-retry")
            d.controller.DeleteSnapshot(req, timeout=120)
            if r:
                d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=r.volume_id,
                                                                  secrets=secrets()))
            d.stop()
            self.assertEqual(pool_state(), baseline, fp)

    def test_crash__delete_last_volume_of_trashed_chain_then_retry(self):
        baseline = pool_state()
        for fp in ("volume-delete:after-mark", "volume-delete:after-image",
                   "snapshot-gc:after-remove", "volume-delete:after-unreserve"):
            d = Driver(mode="controller", name="crash-setup")
            v = d.controller.CreateVolume(create_req("pvc-gc-src", 16 * MiB)).volume
            s = d.controller.CreateSnapshot(snap_req("snap-gc", v.volume_id)).snapshot
            r = d.controller.CreateVolume(create_req(
                "pvc-gc-restored", 0, source=("snapshot", s.snapshot_id))).volume
            d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                              secrets=secrets()))
            d.controller.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=s.snapshot_id,
                                                                  secrets=secrets()))
            d.stop()
            self.assertEqual(len(pool_state()["trash"]), len(baseline["trash"]) + 2)
            req = csi.DeleteVolumeRequest(volume_id=r.volume_id, secrets=secrets())
            self.killed(fp, lambda d: d.controller.DeleteVolume, req)
            d = Driver(mode="controller", name="crash-retry")
            d.controller.DeleteVolume(req, timeout=120)
            d.stop()
            self.assertEqual(pool_state(), baseline, fp)

    def test_crash__clone_each_step_then_retry(self):
        d = Driver(*DEPTH, mode="controller", name="crash-setup")
        base = d.controller.CreateVolume(create_req("pvc-cc-base", 16 * MiB)).volume
        src = d.controller.CreateVolume(create_req("pvc-cc-src", 0,
                                                   source=("volume", base.volume_id))).volume
        snap = d.controller.CreateSnapshot(snap_req("snap-cc", base.volume_id)).snapshot
        d.stop()
        baseline = pool_state()
        for kind, sid in (("volume", src.volume_id), ("snapshot", snap.snapshot_id)):
            for fp in CLONE_FAILPOINTS:
                if kind == "snapshot" and "source" in fp:
                    continue  # a restore takes no temporary snapshot
                req = create_req("pvc-cc-new", 24 * MiB, source=(kind, sid))
                self.killed(fp, lambda d: d.controller.CreateVolume, req)
                d = Driver(*DEPTH, mode="controller", name="crash-retry")
                v = d.controller.CreateVolume(req, timeout=120).volume
                self.assertEqual(v.capacity_bytes, 24 * MiB, (kind, fp))
                st = pool_state()
                self.assertEqual(len(st["images"]), len(baseline["images"]) + 1, (kind, fp))
                self.assertEqual(st["snaps"], baseline["snaps"], (kind, fp))
                d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                                  secrets=secrets()))
                d.stop()
                self.assertEqual(pool_state(), baseline, (kind, fp))
        d = Driver(mode="controller", name="crash-cleanup")
        d.controller.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id,
                                                              secrets=secrets()))
        for v in (src, base):
            d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=v.volume_id,
                                                              secrets=secrets()))
        d.stop()


# ---- data through the node service ----

def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@need_ceph
@need_root
class TestSnapshotData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        n = Node("/", "snap-node", controller=True)
        cls.kdir = n.d.dir
        n.d.stop()
        cls.n = Node(cls.kdir, "snap-node", controller=True)
        cls.ctl = cls.n.d.controller

    @classmethod
    def tearDownClass(cls):
        cls.n.d.stop()
        left = mounts_below(cls.kdir)
        assert not left, left
        assert not loops_of(cls.kdir), loops_of(cls.kdir)

    def setUp(self):
        self.n.test = self

    def paths(self, name):
        staging = os.path.join(self.kdir, "plugins", "staging", name)
        target = os.path.join(self.kdir, "pods", name, "volume")
        os.makedirs(os.path.dirname(staging), exist_ok=True)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return staging, target

    def create(self, name, size=64 * MiB, source=None):
        vol = self.ctl.CreateVolume(create_req(name, size, source), timeout=120).volume
        self.addCleanup(quietly, self.delete, vol.volume_id)
        return vol

    def delete(self, vid):
        self.ctl.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vid, secrets=secrets()),
                              timeout=120)

    def mount(self, vol, name):
        staging, target = self.paths(name)
        cap = mount_cap("ext4")
        self.n.stage(vol, staging, cap)
        self.n.publish(vol, staging, target, cap)
        return staging, target

    def umount(self, vol, staging, target):
        self.n.unpublish(vol, target)
        self.n.unstage(vol, staging)

    def write(self, target, data):
        path = os.path.join(target, "data.bin")
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return hashlib.sha256(data).hexdigest()

    def test_data__snapshot_overwrite_restore_and_clone_live_volume(self):
        before = pool_state()
        vol = self.create("pvc-data-src")
        st, tg = self.mount(vol, "data-src")
        original = self.write(tg, os.urandom(5 * MiB))
        t0 = time.time()
        snap = self.ctl.CreateSnapshot(snap_req("snap-data", vol.volume_id), timeout=60).snapshot
        snap_s = time.time() - t0
        self.addCleanup(quietly, self.ctl.DeleteSnapshot, csi.DeleteSnapshotRequest(
            snapshot_id=snap.snapshot_id, secrets=secrets()))
        self.assertTrue(snap.ready_to_use)
        overwritten = self.write(tg, os.urandom(5 * MiB))
        self.assertNotEqual(original, overwritten)
        # A clone of the live (still mounted) volume: the data as it is now.
        t0 = time.time()
        clone = self.create("pvc-data-clone", source=("volume", vol.volume_id))
        clone_s = time.time() - t0
        t0 = time.time()
        restored = self.create("pvc-data-restored", source=("snapshot", snap.snapshot_id))
        restore_s = time.time() - t0
        print("\n    CreateSnapshot %.2fs, clone %.2fs, restore %.2fs (live source)"
              % (snap_s, clone_s, restore_s))

        rst, rtg = self.mount(restored, "data-restored")
        self.assertEqual(sha256_of(os.path.join(rtg, "data.bin")), original)
        cst, ctg = self.mount(clone, "data-clone")
        self.assertEqual(sha256_of(os.path.join(ctg, "data.bin")), overwritten)
        # They are independent: writing one leaves the others alone.
        self.write(rtg, b"restored\n")
        self.assertEqual(sha256_of(os.path.join(tg, "data.bin")), overwritten)
        self.assertEqual(sha256_of(os.path.join(ctg, "data.bin")), overwritten)
        for v, s, t in ((restored, rst, rtg), (clone, cst, ctg), (vol, st, tg)):
            self.umount(v, s, t)
        self.assertEqual(mounts_below(self.kdir), [])
        self.ctl.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id,
                                                          secrets=secrets()))
        for v in (vol, restored, clone):  # the source first: it waits in the trash
            self.delete(v.volume_id)
        self.assertEqual(pool_state(), before)

    def test_data__restore_after_source_deleted_then_snapshot_deleted(self):
        before = pool_state()
        vol = self.create("pvc-gone-src")
        st, tg = self.mount(vol, "gone-src")
        original = self.write(tg, os.urandom(3 * MiB))
        self.umount(vol, st, tg)
        snap = self.ctl.CreateSnapshot(snap_req("snap-gone", vol.volume_id), timeout=60).snapshot
        self.delete(vol.volume_id)  # the source is gone
        restored = self.create("pvc-gone-restored", source=("snapshot", snap.snapshot_id))
        self.ctl.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id,
                                                          secrets=secrets()))  # and the snapshot
        rst, rtg = self.mount(restored, "gone-restored")
        self.assertEqual(sha256_of(os.path.join(rtg, "data.bin")), original)
        self.write(rtg, b"still writable\n")
        self.umount(restored, rst, rtg)
        rst, rtg = self.mount(restored, "gone-restored")
        with open(os.path.join(rtg, "data.bin"), "rb") as f:
            self.assertEqual(f.read(), b"still writable\n")
        self.umount(restored, rst, rtg)
        self.delete(restored.volume_id)
        self.assertEqual(pool_state(), before)

    def test_data__restore_into_bigger_volume_grows_filesystem_at_stage(self):
        # Kubernetes never calls NodeExpandVolume for a PVC created bigger than its source
        # (nothing was resized), so the stage must grow the filesystem itself.
        before = pool_state()
        vol = self.create("pvc-small-src", size=64 * MiB)
        st, tg = self.mount(vol, "small-src")
        original = self.write(tg, os.urandom(2 * MiB))
        small = os.statvfs(tg)
        self.umount(vol, st, tg)
        snap = self.ctl.CreateSnapshot(snap_req("snap-small", vol.volume_id), timeout=60).snapshot
        self.addCleanup(quietly, self.ctl.DeleteSnapshot, csi.DeleteSnapshotRequest(
            snapshot_id=snap.snapshot_id, secrets=secrets()))
        big = self.create("pvc-big-restored", size=192 * MiB,
                          source=("snapshot", snap.snapshot_id))
        self.assertEqual(big.capacity_bytes, 192 * MiB)
        rst, rtg = self.mount(big, "big-restored")
        grown = os.statvfs(rtg)
        self.assertEqual(sha256_of(os.path.join(rtg, "data.bin")), original)
        self.assertGreater(grown.f_blocks * grown.f_frsize, 2.5 * small.f_blocks * small.f_frsize)
        self.umount(big, rst, rtg)
        # A second stage finds nothing to grow and the data still there.
        rst, rtg = self.mount(big, "big-restored")
        again = os.statvfs(rtg)
        self.assertEqual(again.f_blocks, grown.f_blocks)
        self.assertEqual(sha256_of(os.path.join(rtg, "data.bin")), original)
        self.umount(big, rst, rtg)
        self.ctl.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id,
                                                          secrets=secrets()))
        for v in (vol, big):
            self.delete(v.volume_id)
        self.assertEqual(pool_state(), before)


if __name__ == "__main__":
    unittest.main()
