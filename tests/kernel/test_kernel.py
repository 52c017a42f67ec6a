# SPDX-License-Identifier: Apache-2.0
"""The krbd and rbd-nbd data paths on a real kernel, through the real binary: run inside the
check-kernel guest (tests/kernel/run.sh), where the rbd, nbd and dm-crypt modules are loaded and
a throwaway Ceph runs on the guest's loopback. Skips itself elsewhere.

krbd: ext4/xfs/block flows moving between two nodes, read-only maps, map options reaching the
kernel, a bad map option and an image feature the kernel lacks refused cleanly, unmap of a busy
device, a dead cluster under a mapped device, online ext4 grow. rbd-nbd: ext4 and block flows,
the mapping outliving a SIGKILLed node plugin that then finds and unstages it.

Staging latency (first stage with mkfs, later stages) goes to $RBDCSI_KERNEL_BENCH_OUT as JSON
when that is set (make bench)."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import grpc  # noqa: E402

from lib import (MiB, Driver, block_cap, ceph, ceph_cli, code_of, csi, mount_cap,  # noqa: E402
                 sc_params, secrets)
from test_node import Node, mounts_below, quietly  # noqa: E402

AM = csi.VolumeCapability.AccessMode
RBD_DEVICES = "/sys/bus/rbd/devices"


def in_guest():
    return (os.geteuid() == 0 and ceph() is not None and os.path.isdir("/sys/bus/rbd")
            and os.path.exists("/sys/module/nbd"))


def krbd_devices():
    """{id: (pool, name)} of the kernel's rbd mappings."""
    out = {}
    for d in os.listdir(RBD_DEVICES) if os.path.isdir(RBD_DEVICES) else []:
        with open(os.path.join(RBD_DEVICES, d, "pool")) as f:
            pool = f.read().strip()
        with open(os.path.join(RBD_DEVICES, d, "name")) as f:
            name = f.read().strip()
        out[int(d)] = (pool, name)
    return out


def nbd_connected():
    """The nbd devices with a server attached (/sys/block/nbdN/pid exists then)."""
    return sorted(d for d in os.listdir("/sys/block")
                  if d.startswith("nbd") and os.path.exists("/sys/block/%s/pid" % d))


def image_of(vol):
    return vol.volume_context["imageName"]


def osd_pid():
    with open(os.path.join(os.environ["CEPH_DIR"], "pids", "osd.0.pid")) as f:
        return int(f.read())


@unittest.skipUnless(in_guest(), "needs the check-kernel guest (rbd and nbd modules, a Ceph)")
class KernelCase(unittest.TestCase):
    mounter = None

    @classmethod
    def setUpClass(cls):
        first = Node("/", "k-1", controller=True)
        cls.kdir = first.d.dir
        first.d.stop()
        cls.n1 = Node(cls.kdir, "k-1", controller=True)
        cls.n2 = Node(cls.kdir, "k-2")
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
        # Registered first, so it runs last: after a test and its cleanups nothing is mapped.
        self.addCleanup(self.nothing_mapped)

    def nothing_mapped(self):
        self.assertEqual(krbd_devices(), {})
        self.assertEqual(nbd_connected(), [])

    def paths(self, name):
        staging = os.path.join(self.kdir, "plugins", "staging", name)
        target = os.path.join(self.kdir, "pods", name, "volume")
        os.makedirs(os.path.dirname(staging), exist_ok=True)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return staging, target

    def create(self, name, size=64 * MiB, cap=None, **params):
        params.setdefault("mounter", self.mounter)
        vol = self.ctl.CreateVolume(csi.CreateVolumeRequest(
            name=name, capacity_range=csi.CapacityRange(required_bytes=size),
            volume_capabilities=[cap or mount_cap()], parameters=sc_params(**params),
            secrets=secrets()), timeout=120).volume
        self.addCleanup(quietly, self.delete, vol)
        return vol

    def delete(self, vol):
        self.ctl.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vol.volume_id,
                                                      secrets=secrets()), timeout=120)

    def flow(self, fs, size, check_device):
        """Stage (mkfs), publish, write; unstage; the other node stages and reads back."""
        cap = mount_cap(fs)
        vol = self.create("pvc-%s-%s" % (self.mounter, fs), size, cap, fsType=fs)
        staging, target = self.paths("%s-%s" % (self.mounter, fs))
        data = os.urandom(2 * MiB)
        self.n1.stage(vol, staging, cap)
        self.n1.stage(vol, staging, cap)  # idempotent
        check_device(vol)
        self.n1.publish(vol, staging, target, cap)
        with open(os.path.join(target, "data.bin"), "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.n1.unstage(vol, staging)  # idempotent
        self.assertEqual(krbd_devices(), {})
        self.assertEqual(nbd_connected(), [])
        self.n2.stage(vol, staging, cap)
        self.n2.publish(vol, staging, target, cap, readonly=True)
        with open(os.path.join(target, "data.bin"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).digest(), hashlib.sha256(data).digest())
        with self.assertRaises(OSError):
            open(os.path.join(target, "new"), "w")
        self.n2.unpublish(vol, target)
        self.n2.unstage(vol, staging)
        self.assertEqual(mounts_below(self.kdir), [])
        self.delete(vol)

    def block_flow(self):
        cap = block_cap()
        vol = self.create("pvc-%s-block" % self.mounter, 32 * MiB, cap)
        staging, target = self.paths("%s-block" % self.mounter)
        data = os.urandom(MiB)
        self.n1.stage(vol, staging, cap)
        self.n1.publish(vol, staging, target, cap)
        with open(target, "r+b") as f:
            f.seek(7 * MiB)
            f.write(data)
            os.fsync(f.fileno())
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.n2.stage(vol, staging, cap)
        self.n2.publish(vol, staging, target, cap)
        with open(target, "rb") as f:
            f.seek(7 * MiB)
            self.assertEqual(f.read(MiB), data)
        self.n2.unpublish(vol, target)
        self.n2.unstage(vol, staging)
        self.delete(vol)

    def expand_ext4_online(self):
        cap = mount_cap("ext4")
        vol = self.create("pvc-%s-grow" % self.mounter, 64 * MiB, cap, fsType="ext4")
        staging, target = self.paths("%s-grow" % self.mounter)
        self.n1.stage(vol, staging, cap)
        self.n1.publish(vol, staging, target, cap)
        st = os.statvfs(target)
        before = st.f_blocks * st.f_frsize
        self.ctl.ControllerExpandVolume(csi.ControllerExpandVolumeRequest(
            volume_id=vol.volume_id, capacity_range=csi.CapacityRange(required_bytes=160 * MiB),
            secrets=secrets(), volume_capability=cap), timeout=60)
        r = self.n1.d.node.NodeExpandVolume(csi.NodeExpandVolumeRequest(
            volume_id=vol.volume_id, volume_path=target,
            capacity_range=csi.CapacityRange(required_bytes=160 * MiB), volume_capability=cap),
            timeout=120)
        self.assertEqual(r.capacity_bytes, 160 * MiB)
        st = os.statvfs(target)
        self.assertGreaterEqual(st.f_blocks * st.f_frsize, before + 80 * MiB)
        # Grown while mounted: the mount was never taken down.
        self.assertIn(staging, mounts_below(self.kdir))
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.delete(vol)


class TestKrbd(KernelCase):
    mounter = "krbd"

    def the_device(self, vol):
        devs = krbd_devices()
        self.assertEqual(list(devs.values()), [(ceph()["pool"], image_of(vol))])
        return next(iter(devs))

    def test_flow__ext4(self):
        self.flow("ext4", 64 * MiB, self.the_device)

    def test_flow__xfs(self):
        self.flow("xfs", 320 * MiB, self.the_device)

    def test_flow__block(self):
        self.block_flow()

    def test_expand__ext4_online(self):
        self.expand_ext4_online()

    def test_read_only__map_is_read_only_in_the_kernel(self):
        vol = self.create("pvc-krbd-ro", 32 * MiB, block_cap())
        cap = block_cap(AM.MULTI_NODE_READER_ONLY)
        staging, target = self.paths("krbd-ro")
        self.n1.stage(vol, staging, cap)
        dev = self.the_device(vol)
        with open("/sys/block/rbd%d/ro" % dev) as f:
            self.assertEqual(f.read().strip(), "1")
        self.n1.publish(vol, staging, target, cap, readonly=True)
        with self.assertRaises(OSError):
            fd = os.open("/dev/rbd%d" % dev, os.O_WRONLY)
            try:
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.delete(vol)

    def test_map_options__reach_the_kernel_and_bad_ones_are_refused(self):
        cap = block_cap()
        vol = self.create("pvc-krbd-opts", 32 * MiB, cap, mapOptions="krbd:notrim")
        staging, target = self.paths("krbd-opts")
        self.n1.stage(vol, staging, cap)
        dev = self.the_device(vol)
        with open("/sys/block/rbd%d/queue/discard_max_bytes" % dev) as f:
            self.assertEqual(f.read().strip(), "0")  # notrim took effect
        self.n1.unstage(vol, staging)
        # An option the kernel does not know: refused, nothing mapped, no key in the reason.
        ctx = dict(vol.volume_context, mapOptions="krbd:nosuchoption")
        code, msg = code_of(self.n1.stage, vol, staging, cap, ctx)
        self.assertNotEqual(code, grpc.StatusCode.OK)
        self.assertIn("map option", msg)
        self.assertNotIn(secrets()["userKey"], msg)
        self.assertEqual(krbd_devices(), {})
        self.delete(vol)

    def test_features__an_image_feature_the_kernel_lacks_fails_cleanly(self):
        with open("/sys/bus/rbd/supported_features") as f:
            supported = int(f.read().strip(), 0)
        journaling = 1 << 6
        self.assertFalse(supported & journaling, "this kernel maps journaling images?")
        cap = block_cap()
        vol = self.create("pvc-krbd-journal", 32 * MiB, cap,
                          imageFeatures="layering,exclusive-lock,journaling")
        staging, _ = self.paths("krbd-journal")
        code, msg = code_of(self.n1.stage, vol, staging, cap)
        self.assertNotEqual(code, grpc.StatusCode.OK)
        self.assertIn("feature", msg)
        # The reason says what the kernel supports (it names the missing ones only in dmesg).
        self.assertIn("kernel supports 0x%x" % supported, msg)
        self.assertEqual(krbd_devices(), {})
        self.delete(vol)

    def test_unmap__busy_device_is_refused_then_converges(self):
        cap = block_cap()
        vol = self.create("pvc-krbd-busy", 32 * MiB, cap)
        staging, target = self.paths("krbd-busy")
        self.n1.stage(vol, staging, cap)
        dev = self.the_device(vol)
        holder = open("/dev/rbd%d" % dev, "rb")  # someone still has it open
        try:
            code, msg = code_of(self.n1.unstage, vol, staging)
            self.assertNotEqual(code, grpc.StatusCode.OK, msg)
            self.assertIn(dev, krbd_devices())  # still mapped: not reported gone
        finally:
            holder.close()
        self.n1.unstage(vol, staging)
        self.assertEqual(krbd_devices(), {})
        self.delete(vol)

    def test_dead_cluster__calls_stay_bounded_and_converge_after(self):
        """The OSD stops answering (SIGSTOP) under a mounted krbd volume with dirty data: the
        plugin keeps answering, an unstage that must write the data back returns by its
        deadline instead of hanging, and once the OSD is back the retries converge: nothing
        mounted or mapped. (The stop is kept short: on the emulated CPU an OSD stopped for
        20 s did not serve the kernel client again after SIGCONT.)"""
        cap = mount_cap("ext4")
        vol = self.create("pvc-krbd-dead", 64 * MiB, cap, fsType="ext4")
        staging, target = self.paths("krbd-dead")
        self.n1.stage(vol, staging, cap)
        self.n1.publish(vol, staging, target, cap)
        # Dirty data in the page cache (written, not synced), then the OSD stops: unmounting
        # the staging mount has to write it back and cannot.
        with open(os.path.join(target, "late.bin"), "wb") as f:
            f.write(os.urandom(4 * MiB))
        self.n1.unpublish(vol, target)  # a bind mount: no I/O
        pid = osd_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            t = time.time()
            self.n1.d.node.NodeGetVolumeStats(csi.NodeGetVolumeStatsRequest(
                volume_id=vol.volume_id, volume_path=staging), timeout=10)
            self.assertLess(time.time() - t, 10)
            t = time.time()
            code, msg = code_of(self.n1.d.node.NodeUnstageVolume, csi.NodeUnstageVolumeRequest(
                volume_id=vol.volume_id, staging_target_path=staging), timeout=4)
            took = time.time() - t
            sys.stderr.write("(unstage under a stopped OSD: %s after %.1f s) " % (code, took))
            self.assertLess(took, 8, (code, msg))
            self.n1.d.identity.Probe(csi.ProbeRequest(), timeout=5)  # still answers
        finally:
            os.kill(pid, signal.SIGCONT)
        # The cluster is back: the retries converge.
        deadline = time.time() + 180
        while True:
            code, msg = code_of(self.n1.unstage, vol, staging)
            if code == grpc.StatusCode.OK or time.time() > deadline:
                break
            time.sleep(3)
        self.assertEqual(code, grpc.StatusCode.OK, msg)
        self.assertEqual(mounts_below(self.kdir), [])
        self.assertEqual(krbd_devices(), {})
        self.delete(vol)


class TestNbd(KernelCase):
    mounter = "rbd-nbd"

    def the_device(self, vol):
        self.assertEqual(len(nbd_connected()), 1)

    def test_flow__ext4(self):
        self.flow("ext4", 64 * MiB, self.the_device)

    def test_flow__block(self):
        self.block_flow()

    def test_expand__ext4_online(self):
        self.expand_ext4_online()

    def test_netlink__map_through_netlink_carries_a_cookie(self):
        """mapOptions nbd:try-netlink: rbd-nbd configures the device over netlink and the
        kernel keeps its cookie (/sys/block/nbdN/backend, 5.14 and later): what a later
        'rbd-nbd attach --cookie' needs to reattach after rbd-nbd itself died."""
        cap = block_cap()
        vol = self.create("pvc-nbd-netlink", 32 * MiB, cap, mapOptions="nbd:try-netlink")
        staging, target = self.paths("nbd-netlink")
        self.n1.stage(vol, staging, cap)
        devs = nbd_connected()
        self.assertEqual(len(devs), 1)
        with open("/sys/block/%s/backend" % devs[0]) as f:
            cookie = f.read().strip()
        self.assertRegex(cookie, r"^[0-9a-f-]{36}$")
        self.n1.publish(vol, staging, target, cap)
        with open(target, "r+b") as f:
            f.write(b"netlink" * 1000)
            os.fsync(f.fileno())
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.assertEqual(nbd_connected(), [])
        self.delete(vol)

    def test_unmap__held_device_is_not_disconnected(self):
        """rbd-nbd unmap disconnects a device even while it is held (mounted elsewhere, under
        device-mapper): unstage must refuse instead, like krbd's remove does, and converge once
        the holder lets go."""
        cap = block_cap()
        vol = self.create("pvc-nbd-held", 32 * MiB, cap)
        staging, _ = self.paths("nbd-held")
        self.n1.stage(vol, staging, cap)
        devs = nbd_connected()
        self.assertEqual(len(devs), 1)
        holder = os.open("/dev/" + devs[0], os.O_RDONLY | os.O_EXCL)  # an exclusive claim
        try:
            code, msg = code_of(self.n1.unstage, vol, staging)
            self.assertNotEqual(code, grpc.StatusCode.OK, msg)
            self.assertEqual(nbd_connected(), devs)  # still connected under its holder
            os.pread(holder, 4096, 0)  # and still serving I/O
        finally:
            os.close(holder)
        self.n1.unstage(vol, staging)
        self.assertEqual(nbd_connected(), [])
        self.delete(vol)

    def test_restart__mapping_outlives_a_killed_plugin(self):
        state = os.path.join(self.kdir, "state-nbd-r")

        def start():
            return Driver("--kubelet-dir=" + self.kdir, "--state-dir=" + state, mode="node",
                          nodeid="k-r", name="nbd-restart")

        cap = mount_cap("ext4")
        vol = self.create("pvc-nbd-restart", 64 * MiB, cap, fsType="ext4")
        staging, target = self.paths("nbd-restart")
        d = start()
        d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
            volume_context=vol.volume_context, secrets=secrets()), timeout=120)
        dev = nbd_connected()
        self.assertEqual(len(dev), 1)
        d.kill()
        d = start()
        self.addCleanup(d.stop)
        self.assertIn("found and healthy", d.log_text())
        self.assertEqual(nbd_connected(), dev)
        d.node.NodePublishVolume(csi.NodePublishVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, target_path=target,
            volume_capability=cap), timeout=60)
        with open(os.path.join(target, "f"), "w") as f:
            f.write("after restart\n")
            os.fsync(f.fileno())
        d.node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(
            volume_id=vol.volume_id, target_path=target), timeout=60)
        d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging), timeout=120)
        self.assertEqual(nbd_connected(), [])
        r = subprocess.run(["pgrep", "-x", "rbd-nbd"], capture_output=True)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.delete(vol)


class TestLatency(KernelCase):
    """Staging latency per mapper (only with RBDCSI_KERNEL_BENCH_OUT: make bench)."""
    ROUNDS = 3

    def test_stage_latency(self):
        out = os.environ.get("RBDCSI_KERNEL_BENCH_OUT")
        if not out:
            self.skipTest("RBDCSI_KERNEL_BENCH_OUT not set (make bench sets it)")
        cap = mount_cap("ext4")
        res = {}
        for mounter in ("krbd", "rbd-nbd"):
            first, later = [], []
            for i in range(self.ROUNDS):
                vol = self.create("pvc-lat-%s-%d" % (mounter, i), 64 * MiB, cap,
                                  fsType="ext4", mounter=mounter)
                staging, _ = self.paths("lat-%s-%d" % (mounter, i))
                t = time.monotonic()
                self.n1.stage(vol, staging, cap)
                first.append(time.monotonic() - t)
                self.n1.unstage(vol, staging)
                t = time.monotonic()
                self.n1.stage(vol, staging, cap)
                later.append(time.monotonic() - t)
                self.n1.unstage(vol, staging)
                self.delete(vol)
            res[mounter] = {"first_stage_with_mkfs_s": first, "later_stage_s": later}
        with open(out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
