# SPDX-License-Identifier: Apache-2.0
"""Request paths and ownership on the node (issue 12), against the real binary, real Ceph and
the rbd-fuse mapper (root only). K is the plugin's --kubelet-dir.

- A symlink below K (`ln -s <outside> K/evil`) never lets stage, publish or block publish act
  at `K/evil/x`: refused, and nothing appears outside K.
- K itself (`K`, `K/`, `K/.`) is never a target.
- Unpublish/unstage of an id that never staged or published anything touch nothing: a plain
  file stays, nothing is deleted through a symlink, a tmpfs under K (or outside K through a
  symlink) stays mounted.
- A foreign mount stacked on a target/staging path this volume owns is left alone, with an
  error naming it.
- One image, one stage per node: the same image under a second volume id is refused with
  FAILED_PRECONDITION naming the first, also when both stages race.
"""
import os
import shutil
import subprocess
import tempfile
import threading
import unittest

import grpc

from lib import (MiB, Driver, block_cap, code_of, csi, mount_cap, need_ceph, need_root,
                 sc_params, secrets)


def is_mountpoint(path):
    with open("/proc/self/mountinfo") as f:
        return any(l.split()[4] == path for l in f)


def mount_tmpfs(path):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", path], check=True)


def umount(path):
    subprocess.run(["umount", path], check=False)


def quietly(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass


@need_ceph
@need_root
class TestNodePaths(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Driver(mode="all", nodeid="node-paths", name="node-paths")
        cls.k = cls.d.dir

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def setUp(self):
        self.outside = tempfile.mkdtemp(prefix="rbdcsi-outside.")
        self.addCleanup(self.cleanup_outside)
        self.evil = os.path.join(self.k, "evil")
        quietly(os.unlink, self.evil)
        os.symlink(self.outside, self.evil)
        self.addCleanup(quietly, os.unlink, self.evil)

    def cleanup_outside(self):
        with open("/proc/self/mountinfo") as f:
            for l in f:
                if l.split()[4].startswith(self.outside):
                    umount(l.split()[4])
        shutil.rmtree(self.outside, ignore_errors=True)

    def outside_entries(self):
        return sorted(os.listdir(self.outside))

    # ---- helpers ----

    def create(self, name, cap, size=32 * MiB):
        vol = self.d.controller.CreateVolume(csi.CreateVolumeRequest(
            name=name, capacity_range=csi.CapacityRange(required_bytes=size),
            volume_capabilities=[cap], parameters=sc_params(mounter="fuse"),
            secrets=secrets()), timeout=60).volume
        self.addCleanup(quietly, self.delete, vol)
        return vol

    def delete(self, vol):
        self.d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vol.volume_id,
                                                               secrets=secrets()), timeout=60)

    def stage(self, vol, staging, cap, volume_id=None):
        vid = volume_id or vol.volume_id
        self.addCleanup(quietly, self.unstage, vid, staging)
        return self.d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
            volume_id=vid, staging_target_path=staging, volume_capability=cap,
            volume_context=vol.volume_context, secrets=secrets()), timeout=120)

    def unstage(self, volume_id, staging):
        return self.d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
            volume_id=volume_id, staging_target_path=staging), timeout=120)

    def publish(self, vol, staging, target, cap):
        self.addCleanup(quietly, self.unpublish, vol.volume_id, target)
        return self.d.node.NodePublishVolume(csi.NodePublishVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, target_path=target,
            volume_capability=cap, volume_context=vol.volume_context), timeout=60)

    def unpublish(self, volume_id, target):
        return self.d.node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(
            volume_id=volume_id, target_path=target), timeout=60)

    def paths(self, name):
        staging = os.path.join(self.k, "plugins", name, "globalmount")
        target = os.path.join(self.k, "pods", name, "mount")
        os.makedirs(os.path.dirname(staging), exist_ok=True)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return staging, target

    # ---- paths resolved, not parsed ----

    def test_symlink__stage_publish_block_publish_refused_nothing_outside(self):
        cap = mount_cap("ext4")
        vol = self.create("pvc-paths-symlink", cap)
        code, msg = code_of(self.stage, vol, os.path.join(self.evil, "x"), cap)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.assertIn("symbolic link", msg)
        self.assertEqual(self.outside_entries(), [])
        staging, target = self.paths("symlink")
        self.stage(vol, staging, cap)
        code, msg = code_of(self.publish, vol, staging, os.path.join(self.evil, "x"), cap)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.assertEqual(self.outside_entries(), [])
        # A symlink in a middle component, and as the last component.
        code, msg = code_of(self.publish, vol, staging,
                            os.path.join(self.evil, "a", "b"), cap)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        code, msg = code_of(self.publish, vol, staging, self.evil, cap)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.assertEqual(self.outside_entries(), [])
        self.assertFalse(is_mountpoint(self.outside))
        # The staging path through the link is refused for publish too.
        code, msg = code_of(self.publish, vol, os.path.join(self.evil, "x"), target, cap)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.assertFalse(os.path.exists(target))
        self.unstage(vol.volume_id, staging)

    def test_symlink__block_publish_refused_nothing_outside(self):
        cap = block_cap()
        vol = self.create("pvc-paths-symlink-block", cap)
        staging, _ = self.paths("symlink-block")
        self.stage(vol, staging, cap)
        code, msg = code_of(self.publish, vol, staging, os.path.join(self.evil, "x"), cap)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.assertEqual(self.outside_entries(), [])
        self.unstage(vol.volume_id, staging)

    def test_kubelet_dir_itself_refused(self):
        cap = mount_cap("ext4")
        vol = self.create("pvc-paths-root", cap)
        staging, _ = self.paths("root")
        for bad in (self.k, self.k + "/", self.k + "/.", self.k + "//"):
            code, msg = code_of(self.stage, vol, bad, cap)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, (bad, msg))
        self.stage(vol, staging, cap)
        for bad in (self.k, self.k + "/", self.k + "/.", self.k + "/pods/.."):
            code, msg = code_of(self.publish, vol, staging, bad, cap)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, (bad, msg))
            code, msg = code_of(self.unpublish, vol.volume_id, bad)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, (bad, msg))
        self.assertFalse(is_mountpoint(self.k))
        self.unstage(vol.volume_id, staging)

    # ---- act only on what you own ----

    def test_never_staged_id__plain_file_and_foreign_dir_left(self):
        plain = os.path.join(self.k, "plain.txt")
        with open(plain, "w") as f:
            f.write("keep me")
        self.addCleanup(quietly, os.unlink, plain)
        d = os.path.join(self.k, "foreign-dir")
        os.makedirs(d, exist_ok=True)
        self.addCleanup(quietly, os.rmdir, d)
        for path in (plain, d):
            self.assertEqual(code_of(self.unpublish, "any", path)[0], grpc.StatusCode.OK)
            self.assertEqual(code_of(self.unstage, "any", path)[0], grpc.StatusCode.OK)
        with open(plain) as f:
            self.assertEqual(f.read(), "keep me")
        self.assertTrue(os.path.isdir(d))

    def test_never_staged_id__nothing_deleted_through_symlink(self):
        victim = os.path.join(self.outside, "victim.txt")
        vdir = os.path.join(self.outside, "vdir")
        with open(victim, "w") as f:
            f.write("x")
        os.mkdir(vdir)
        for name in ("victim.txt", "vdir"):
            path = os.path.join(self.evil, name)
            code, msg = code_of(self.unpublish, "any", path)
            self.assertIn(code, (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), msg)
            code, msg = code_of(self.unstage, "any", path)
            self.assertIn(code, (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), msg)
        self.assertEqual(self.outside_entries(), ["vdir", "victim.txt"])

    def test_never_staged_id__tmpfs_left_mounted(self):
        inside = os.path.join(self.k, "pods", "tmpfs-target")
        os.makedirs(inside, exist_ok=True)
        mount_tmpfs(inside)
        self.addCleanup(quietly, os.rmdir, inside)
        self.addCleanup(umount, inside)
        out = os.path.join(self.outside, "m")
        os.mkdir(out)
        mount_tmpfs(out)
        for path in (inside, os.path.join(self.evil, "m")):
            code, msg = code_of(self.unpublish, "any", path)
            self.assertIn(code, (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), msg)
            code, msg = code_of(self.unstage, "any", path)
            self.assertIn(code, (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), msg)
        self.assertTrue(is_mountpoint(inside))
        self.assertTrue(is_mountpoint(out))

    def test_foreign_mount_on_owned_paths_left_with_error(self):
        cap = mount_cap("ext4")
        vol = self.create("pvc-paths-foreign", cap)
        staging, target = self.paths("foreign")
        self.stage(vol, staging, cap)
        self.publish(vol, staging, target, cap)
        # Another mount stacked on the target: unpublish names it and leaves it.
        mount_tmpfs(target)
        code, msg = code_of(self.unpublish, vol.volume_id, target)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("tmpfs", msg)
        self.assertTrue(is_mountpoint(target))
        umount(target)
        self.unpublish(vol.volume_id, target)
        self.assertFalse(os.path.exists(target))
        # A published volume's other id cannot unpublish it.
        self.publish(vol, staging, target, cap)
        self.assertEqual(code_of(self.unpublish, "other-id", target)[0], grpc.StatusCode.OK)
        self.assertTrue(is_mountpoint(target))
        self.unpublish(vol.volume_id, target)
        # The same on the staging path.
        mount_tmpfs(staging)
        code, msg = code_of(self.unstage, vol.volume_id, staging)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("tmpfs", msg)
        self.assertTrue(is_mountpoint(staging))
        umount(staging)
        self.assertEqual(code_of(self.unstage, "other-id", staging)[0], grpc.StatusCode.OK)
        self.assertTrue(is_mountpoint(staging))
        self.unstage(vol.volume_id, staging)
        self.assertFalse(is_mountpoint(staging))

    # ---- one image, one stage per node ----

    def test_same_image_two_ids_refused(self):
        cap = mount_cap("ext4")
        vol = self.create("pvc-paths-twice", cap)
        staging, _ = self.paths("twice")
        staging2, _ = self.paths("twice-2")
        self.stage(vol, staging, cap)
        code, msg = code_of(self.stage, vol, staging2, cap, "alias-" + vol.volume_id)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn(vol.volume_id, msg)
        self.assertFalse(is_mountpoint(staging2))
        self.unstage(vol.volume_id, staging)
        # Once unstaged, the other id may stage it.
        self.stage(vol, staging2, cap, "alias-" + vol.volume_id)
        self.unstage("alias-" + vol.volume_id, staging2)

    def test_same_image_two_ids_racing_one_wins(self):
        cap = block_cap()
        vol = self.create("pvc-paths-race", cap)
        results = {}
        ids = ["race-a-" + vol.volume_id, "race-b-" + vol.volume_id]

        def run(vid):
            staging, _ = self.paths("race-" + vid[:6])
            results[vid] = code_of(self.stage, vol, staging, cap, vid)

        for _ in range(3):
            threads = [threading.Thread(target=run, args=(v,)) for v in ids]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            codes = [results[v][0] for v in ids]
            self.assertEqual(codes.count(grpc.StatusCode.OK), 1, results)
            for v in ids:
                if results[v][0] != grpc.StatusCode.OK:
                    self.assertIn(results[v][0], (grpc.StatusCode.FAILED_PRECONDITION,
                                                  grpc.StatusCode.ABORTED), results[v])
                self.unstage(v, self.paths("race-" + v[:6])[0])


if __name__ == "__main__":
    unittest.main()
