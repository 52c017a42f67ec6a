# SPDX-License-Identifier: Apache-2.0
"""The node service end to end, as kubelet drives it, through the rbd-fuse mapper on a real Ceph
with real loop devices, mkfs and mounts (root only): ext4, xfs, block; read-only publish;
never formatting a device that carries a signature; plugin restarts; bad input."""
import hashlib
import os
import shutil
import subprocess
import time
import unittest

import grpc

from lib import (MiB, Driver, block_cap, ceph, code_of, csi, mount_cap, need_ceph, need_root,
                 sc_params, secrets)

AM = csi.VolumeCapability.AccessMode


def mounts_below(path):
    with open("/proc/self/mounts") as f:
        return [l.split()[1] for l in f if l.split()[1].startswith(path)]


def loops_of(path):
    r = subprocess.run(["losetup", "-a"], capture_output=True, text=True)
    return [l for l in r.stdout.splitlines() if path in l]


def quietly(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass


class Node:
    """A node plugin (its own node id and state) sharing the test's kubelet directory.
    test, when set, gets cleanups registered so a failing test still unpublishes and unstages."""

    def __init__(self, kubelet_dir, node_id, controller=False):
        self.d = Driver("--kubelet-dir=" + kubelet_dir, mode="all" if controller else "node",
                        nodeid=node_id, name="node-" + node_id)
        self.node_id = node_id
        self.test = None

    def stage(self, vol, staging, cap, ctx=None):
        if self.test:
            self.test.addCleanup(quietly, self.unstage, vol, staging)
        return self.d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
            volume_context=ctx if ctx is not None else vol.volume_context, secrets=secrets()),
            timeout=120)

    def unstage(self, vol, staging):
        return self.d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging), timeout=120)

    def publish(self, vol, staging, target, cap, readonly=False):
        if self.test:
            self.test.addCleanup(quietly, self.unpublish, vol, target)
        return self.d.node.NodePublishVolume(csi.NodePublishVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, target_path=target,
            volume_capability=cap, readonly=readonly, volume_context=vol.volume_context),
            timeout=60)

    def unpublish(self, vol, target):
        return self.d.node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(
            volume_id=vol.volume_id, target_path=target), timeout=60)


@need_ceph
@need_root
class TestNodeFlow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n1 = Node("/", "node-1", controller=True)
        cls.kdir = cls.n1.d.dir
        cls.n1.d.stop()
        # Both nodes share one kubelet directory (the test's), each has its own state.
        cls.n1 = Node(cls.kdir, "node-1", controller=True)
        cls.n2 = Node(cls.kdir, "node-2")
        cls.ctl = cls.n1.d.controller

    @classmethod
    def tearDownClass(cls):
        cls.n1.d.stop()
        cls.n2.d.stop()
        left = mounts_below(cls.kdir)
        assert not left, left

    def setUp(self):
        self.n1.test = self
        self.n2.test = self

    def paths(self, name):
        staging = os.path.join(self.kdir, "plugins", "staging", name)
        target = os.path.join(self.kdir, "pods", name, "volume")
        os.makedirs(os.path.dirname(staging), exist_ok=True)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return staging, target

    def create(self, name, size=64 * MiB, cap=None, **params):
        params.setdefault("mounter", "fuse")
        vol = self.ctl.CreateVolume(csi.CreateVolumeRequest(
            name=name, capacity_range=csi.CapacityRange(required_bytes=size),
            volume_capabilities=[cap or mount_cap()], parameters=sc_params(**params),
            secrets=secrets()), timeout=60).volume
        self.addCleanup(quietly, self.delete, vol)
        return vol

    def delete(self, vol):
        self.ctl.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vol.volume_id,
                                                      secrets=secrets()), timeout=60)

    def flow(self, fs, size):
        cap = mount_cap(fs)
        vol = self.create("pvc-flow-" + fs, size, cap, fsType=fs)
        staging, target = self.paths("flow-" + fs)
        data = os.urandom(3 * MiB)
        digest = hashlib.sha256(data).hexdigest()
        self.n1.stage(vol, staging, cap)
        self.n1.stage(vol, staging, cap)  # idempotent
        self.n1.publish(vol, staging, target, cap)
        self.n1.publish(vol, staging, target, cap)  # idempotent
        with open(os.path.join(target, "data.bin"), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        st = self.n1.d.node.NodeGetVolumeStats(csi.NodeGetVolumeStatsRequest(
            volume_id=vol.volume_id, volume_path=target))
        units = {u.unit: u for u in st.usage}
        self.assertGreater(units[csi.VolumeUsage.BYTES].total, size // 2)
        self.assertGreater(units[csi.VolumeUsage.BYTES].used, 0)
        self.assertGreater(units[csi.VolumeUsage.INODES].total, 0)
        self.assertFalse(st.volume_condition.abnormal, st.volume_condition.message)
        self.n1.unpublish(vol, target)
        self.n1.unpublish(vol, target)  # idempotent
        self.assertFalse(os.path.exists(target))
        self.n1.unstage(vol, staging)
        self.n1.unstage(vol, staging)  # idempotent
        self.assertEqual(mounts_below(self.kdir), [])
        # The pod moves: another node stages the same volume and reads the data back.
        self.n2.stage(vol, staging, cap)
        self.n2.publish(vol, staging, target, cap, readonly=True)
        with open(os.path.join(target, "data.bin"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest)
        with self.assertRaises(OSError):
            open(os.path.join(target, "new"), "w")  # read-only publish refuses writes
        self.n2.unpublish(vol, target)
        self.n2.unstage(vol, staging)
        self.assertEqual(mounts_below(self.kdir), [])
        self.assertEqual(loops_of(self.kdir), [])
        self.delete(vol)

    def test_flow__ext4(self):
        self.flow("ext4", 64 * MiB)

    def test_flow__xfs(self):
        self.flow("xfs", 320 * MiB)

    def test_flow__block(self):
        cap = block_cap()
        vol = self.create("pvc-flow-block", 32 * MiB, cap)
        staging, target = self.paths("flow-block")
        data = os.urandom(MiB)
        self.n1.stage(vol, staging, cap)
        self.n1.publish(vol, staging, target, cap)
        with open(target, "r+b") as f:
            f.seek(5 * MiB)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        st = self.n1.d.node.NodeGetVolumeStats(csi.NodeGetVolumeStatsRequest(
            volume_id=vol.volume_id, volume_path=target))
        self.assertEqual(st.usage[0].total, 32 * MiB)
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.n2.stage(vol, staging, cap)
        self.n2.publish(vol, staging, target, cap)
        with open(target, "rb") as f:
            f.seek(5 * MiB)
            self.assertEqual(f.read(MiB), data)
        self.n2.unpublish(vol, target)
        self.n2.unstage(vol, staging)
        self.delete(vol)

    def test_single_writer__second_target_refused(self):
        cap = mount_cap(mode=AM.SINGLE_NODE_SINGLE_WRITER)
        vol = self.create("pvc-rwop", 32 * MiB, cap)
        staging, target = self.paths("rwop")
        other = target + "-2"
        self.n1.stage(vol, staging, cap)
        self.n1.publish(vol, staging, target, cap)
        code, msg = code_of(self.n1.publish, vol, staging, other, cap)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        # Unstaging while published is refused, and changes nothing.
        code, _ = code_of(self.n1.unstage, vol, staging)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.delete(vol)

    def write_signature(self, vol, kind):
        """Writes a signature onto the volume through a block publish."""
        cap = block_cap()
        staging, target = self.paths("sig-" + kind)
        self.n1.stage(vol, staging, cap)
        self.n1.publish(vol, staging, target, cap)
        dev = target
        if kind == "ext4":
            subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
        elif kind == "xfs":
            subprocess.run(["mkfs.xfs", "-q", "-f", dev], check=True)
        elif kind == "swap":
            subprocess.run(["mkswap", dev], check=True, capture_output=True)
        elif kind == "luks":
            # A LUKS1 header: magic, version 1, cipher fields (what libblkid checks).
            hdr = b"LUKS\xba\xbe\x00\x01" + b"aes".ljust(32, b"\0") + \
                  b"xts-plain64".ljust(32, b"\0") + b"sha256".ljust(32, b"\0")
            hdr += (4096).to_bytes(4, "big") + (32).to_bytes(4, "big")
            hdr = hdr.ljust(168, b"\0") + b"12345678-1234-1234-1234-123456789abc".ljust(40, b"\0")
            with open(dev, "r+b") as f:
                f.write(hdr)
                os.fsync(f.fileno())
        elif kind == "gpt":
            subprocess.run(["sfdisk", "-q", dev], input="label: gpt\n,\n", text=True,
                           check=True, capture_output=True)
        with open(dev, "rb") as f:
            before = hashlib.sha256(f.read(2 * MiB)).hexdigest()
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        return before

    def test_data_safety__signatures_are_never_formatted(self):
        for kind, fs in [("swap", "ext4"), ("luks", "ext4"), ("gpt", "ext4"), ("xfs", "ext4"),
                         ("ext4", "xfs")]:
            size = 320 * MiB if "xfs" in (kind, fs) else 32 * MiB
            vol = self.create("pvc-sig-" + kind, size, block_cap())
            before = self.write_signature(vol, kind)
            staging, _ = self.paths("sig-mount-" + kind)
            code, msg = code_of(self.n1.stage, vol, staging, mount_cap(fs))
            self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, (kind, msg))
            self.assertIn("refusing", msg, kind)
            self.assertEqual(mounts_below(self.kdir), [], kind)
            # The bytes are untouched: read them back through a block stage.
            cap = block_cap()
            st2, t2 = self.paths("sig-check-" + kind)
            self.n1.stage(vol, st2, cap)
            self.n1.publish(vol, st2, t2, cap)
            with open(t2, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read(2 * MiB)).hexdigest(), before, kind)
            self.n1.unpublish(vol, t2)
            self.n1.unstage(vol, st2)
            self.delete(vol)

    def test_data_safety__existing_filesystem_of_requested_type_is_mounted_not_formatted(self):
        vol = self.create("pvc-keep", 32 * MiB, block_cap())
        self.write_signature(vol, "ext4")
        cap = mount_cap("ext4")
        staging, target = self.paths("keep")
        self.n1.stage(vol, staging, cap)
        self.n1.publish(vol, staging, target, cap)
        self.assertTrue(os.path.isdir(os.path.join(target, "lost+found")))
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.delete(vol)

    def test_expand__xfs_online(self):
        cap = mount_cap("xfs")
        vol = self.create("pvc-expand", 320 * MiB, cap, fsType="xfs")
        staging, target = self.paths("expand")
        self.n1.stage(vol, staging, cap)
        self.n1.publish(vol, staging, target, cap)
        st = os.statvfs(target)
        before = st.f_blocks * st.f_frsize
        self.ctl.ControllerExpandVolume(csi.ControllerExpandVolumeRequest(
            volume_id=vol.volume_id, capacity_range=csi.CapacityRange(required_bytes=400 * MiB),
            secrets=secrets(), volume_capability=cap))
        r = self.n1.d.node.NodeExpandVolume(csi.NodeExpandVolumeRequest(
            volume_id=vol.volume_id, volume_path=target,
            capacity_range=csi.CapacityRange(required_bytes=400 * MiB), volume_capability=cap),
            timeout=120)
        self.assertEqual(r.capacity_bytes, 400 * MiB)
        st = os.statvfs(target)
        self.assertGreaterEqual(st.f_blocks * st.f_frsize, before + 70 * MiB)
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.delete(vol)

    def test_bad_input__right_code_nothing_mounted(self):
        vol = self.create("pvc-bad-node", 32 * MiB)
        staging, target = self.paths("bad")
        n = self.n1
        cases = [
            (lambda: n.d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
                staging_target_path=staging, volume_capability=mount_cap(),
                volume_context=vol.volume_context, secrets=secrets())), "volume_id"),
            (lambda: n.stage(vol, "relative/path", mount_cap()), "staging_target_path"),
            (lambda: n.stage(vol, staging + "/../../etc", mount_cap()), "staging_target_path"),
            (lambda: n.stage(vol, "/etc/evil", mount_cap()), "staging_target_path"),
            (lambda: n.stage(vol, staging, mount_cap(),
                             ctx=dict(vol.volume_context, mounter="magic")), "mounter"),
            (lambda: n.d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
                volume_id=vol.volume_id, staging_target_path=staging,
                volume_capability=mount_cap(), volume_context=vol.volume_context)), "secrets"),
            (lambda: n.stage(vol, staging, None), "volume_capability"),
            (lambda: n.publish(vol, staging, "rel/target", mount_cap()), "target_path"),
            (lambda: n.d.node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(
                volume_id=vol.volume_id)), "target_path"),
        ]
        for fn, field in cases:
            code, msg = code_of(fn)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, (field, msg))
            self.assertIn(field, msg)
        code, msg = code_of(n.stage, vol, staging, mount_cap(),
                            ctx=dict(vol.volume_context, clusterID="nosuch"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        code, msg = code_of(n.publish, vol, staging, target, mount_cap())
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)  # not staged
        code, _ = code_of(n.d.node.NodeGetVolumeStats, csi.NodeGetVolumeStatsRequest(
            volume_id="garbage-id", volume_path=target))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(mounts_below(self.kdir), [])
        self.delete(vol)


@need_ceph
@need_root
class TestNodeRestart(unittest.TestCase):
    def test_restart__sigkill_between_steps_then_complete(self):
        first = Node("/", "node-r", controller=True)
        kdir = first.d.dir
        first.d.stop()
        state = os.path.join(kdir, "state-r")

        def start():
            return Driver("--kubelet-dir=" + kdir, "--state-dir=" + state, mode="all",
                          nodeid="node-r", name="restart")

        d = start()
        cap = mount_cap()
        vol = d.controller.CreateVolume(csi.CreateVolumeRequest(
            name="pvc-restart", capacity_range=csi.CapacityRange(required_bytes=32 * MiB),
            volume_capabilities=[cap], parameters=sc_params(mounter="fuse"),
            secrets=secrets())).volume
        staging = os.path.join(kdir, "staging-r")
        target = os.path.join(kdir, "target-r")
        os.makedirs(staging, exist_ok=True)
        d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
            volume_context=vol.volume_context, secrets=secrets()), timeout=120)
        d.kill()  # between stage and publish
        d = start()
        self.assertIn("found and healthy", d.log_text())
        d.node.NodePublishVolume(csi.NodePublishVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, target_path=target,
            volume_capability=cap), timeout=60)
        with open(os.path.join(target, "f"), "w") as f:
            f.write("still here\n")
        d.kill()  # between publish and unpublish
        d = start()
        with open(os.path.join(target, "f")) as f:
            self.assertEqual(f.read(), "still here\n")  # rbd-fuse outlived the plugin
        d.node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(
            volume_id=vol.volume_id, target_path=target), timeout=60)
        d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging), timeout=120)
        d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vol.volume_id,
                                                          secrets=secrets()), timeout=60)
        d.stop()
        self.assertEqual(mounts_below(kdir), [])
        self.assertEqual(loops_of(kdir), [])
        left = [f for f in os.listdir(os.path.join(state, "rbdcsi.io", "stage"))
                if f.endswith(".json") or f.endswith(".targets")] \
            if os.path.isdir(os.path.join(state, "rbdcsi.io", "stage")) else []
        self.assertEqual(left, [])
        r = subprocess.run(["pgrep", "-f", "rbd-fuse.*" + kdir], capture_output=True)
        self.assertNotEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    unittest.main()
