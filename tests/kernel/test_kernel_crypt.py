# SPDX-License-Identifier: Apache-2.0
"""Encrypted volumes (StorageClass encrypted: "true", LUKS2 on the mapped device; design in
driver/host/kms.h) on a real kernel with dm-crypt, through the real binary: run inside the
check-kernel guest (tests/kernel/run.sh) like test_kernel.py. Skips itself elsewhere.

Per mapper (krbd, rbd-nbd): the first stage formats LUKS2 and the filesystem goes on the
dm-crypt device; a marker written through it is not on the raw device nor in `rbd export`; a
wrong or missing encryptionPassphrase fails cleanly (nothing mapped, opened or recorded); the
other node restages it with the right one and reads the data back; expand grows the LUKS2
mapping and the filesystem. krbd also: a clone of an encrypted volume opens with its source's
passphrase and holds its data."""
import hashlib
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import grpc  # noqa: E402

from lib import Driver, MiB, ceph, csi, mount_cap, secrets  # noqa: E402
from test_kernel import KernelCase, image_of, krbd_devices, nbd_connected  # noqa: E402
from test_node import mounts_below  # noqa: E402

PASS = "a passphrase for the tests of rbdcsi's encrypted volumes"
MARKER = b"rbdcsi-plaintext-marker-7f3a9c1e"


def crypt_secrets(passphrase=PASS):
    s = dict(secrets())
    if passphrase is not None:
        s["encryptionPassphrase"] = passphrase
    return s


def dm_names():
    """The names of the active device-mapper devices."""
    out = []
    for d in os.listdir("/sys/block"):
        if d.startswith("dm-"):
            with open("/sys/block/%s/dm/name" % d) as f:
                out.append(f.read().strip())
    return sorted(out)


def dm_under(name):
    """The block device names under dm device name (its slaves)."""
    for d in os.listdir("/sys/block"):
        if d.startswith("dm-"):
            with open("/sys/block/%s/dm/name" % d) as f:
                if f.read().strip() == name:
                    return os.listdir("/sys/block/%s/slaves" % d)
    return []


def size_of(dev):
    with open(dev, "rb") as f:
        return f.seek(0, os.SEEK_END)


def contains(path, needle, limit=None):
    """Whether the bytes of needle occur in the first limit bytes of path."""
    tail = b""
    done = 0
    with open(path, "rb") as f:
        while limit is None or done < limit:
            buf = f.read(4 * MiB)
            if not buf:
                return False
            done += len(buf)
            if needle in tail + buf:
                return True
            tail = buf[-len(needle):]
    return False


@unittest.skipUnless(os.path.exists("/sys/module/dm_crypt"), "needs dm-crypt (the guest)")
class CryptCase(KernelCase):
    def setUp(self):
        super().setUp()
        self.addCleanup(self.nothing_open)

    def nothing_open(self):
        self.assertEqual([n for n in dm_names() if n.startswith("rbdcsi-")], [])

    def stage(self, node, vol, staging, cap, passphrase=PASS, ctx=None):
        self.addCleanup(self.quiet_unstage, node, vol, staging)
        return node.d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
            volume_context=ctx if ctx is not None else vol.volume_context,
            secrets=crypt_secrets(passphrase)), timeout=180)

    def quiet_unstage(self, node, vol, staging):
        try:
            node.unstage(vol, staging)
        except grpc.RpcError:
            pass

    def code_of_stage(self, node, vol, staging, cap, passphrase):
        try:
            self.stage(node, vol, staging, cap, passphrase)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()

    def the_dm(self, vol):
        names = [n for n in dm_names() if n.startswith("rbdcsi-")]
        self.assertEqual(len(names), 1, names)
        return names[0]

    def raw_device(self, name):
        under = dm_under(name)
        self.assertEqual(len(under), 1, under)
        return "/dev/" + under[0]

    def nothing_left(self, node, vol):
        self.assertEqual(krbd_devices(), {})
        self.assertEqual(nbd_connected(), [])
        self.nothing_open()
        # No state file of the volume on any node (<sha256(volume id)>.json).
        mine = hashlib.sha256(vol.volume_id.encode()).hexdigest() + ".json"
        left = [os.path.join(d, mine) for d, _, files in os.walk(node.d.dir) if mine in files]
        self.assertEqual(left, [])
        # The passphrase never reaches the log.
        if os.path.exists(node.d.log_path):
            with open(node.d.log_path, "rb") as f:
                self.assertNotIn(PASS.encode(), f.read())

    def encrypted_flow(self, export):
        cap = mount_cap("ext4")
        vol = self.create("pvc-%s-luks" % self.mounter, 64 * MiB, cap, fsType="ext4",
                          encrypted="true")
        self.assertEqual(vol.volume_context["encrypted"], "true")
        staging, target = self.paths("%s-luks" % self.mounter)
        data = MARKER * (MiB // len(MARKER))
        self.stage(self.n1, vol, staging, cap)
        self.stage(self.n1, vol, staging, cap)  # idempotent
        name = self.the_dm(vol)
        raw = self.raw_device(name)
        with open("/proc/mounts") as f:
            mounts = f.read().splitlines()
        self.assertEqual([m.split()[0] for m in mounts if m.split()[1] == staging],
                         ["/dev/mapper/" + name])
        with open(raw, "rb") as f:
            self.assertEqual(f.read(6), b"LUKS\xba\xbe")
        self.n1.publish(vol, staging, target, cap)
        with open(os.path.join(target, "data.bin"), "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        # Written back to the image; the page cache of the raw device dropped.
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        self.assertFalse(contains(raw, MARKER), "plaintext on the raw device")
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.n1.unstage(vol, staging)  # idempotent
        self.nothing_left(self.n1, vol)
        if export:
            out = "/tmp/export-%s.img" % os.getpid()
            try:
                subprocess.run(["rbd", "-c", ceph()["conf"], "export", "--no-progress",
                                "%s/%s" % (ceph()["pool"], image_of(vol)), out],
                               check=True, capture_output=True, timeout=300)
                self.assertTrue(contains(out, b"LUKS\xba\xbe", 6))
                self.assertFalse(contains(out, MARKER), "plaintext in rbd export")
            finally:
                if os.path.exists(out):
                    os.unlink(out)
        # The wrong key, then none: refused cleanly, nothing left behind.
        code, msg = self.code_of_stage(self.n2, vol, staging, cap, PASS + "x")
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED, msg)
        self.assertIn("encryptionPassphrase does not unwrap", msg)
        self.assertNotIn(PASS, msg)
        self.nothing_left(self.n2, vol)
        code, msg = self.code_of_stage(self.n2, vol, staging, cap, None)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, msg)
        self.assertIn("encryptionPassphrase", msg)
        # Without encrypted in the context the LUKS header is left alone.
        ctx = dict(vol.volume_context)
        del ctx["encrypted"]
        code, msg = grpc.StatusCode.OK, ""
        try:
            self.stage(self.n2, vol, staging, cap, ctx=ctx)
        except grpc.RpcError as e:
            code, msg = e.code(), e.details()
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("crypto_LUKS", msg)
        self.nothing_left(self.n2, vol)
        # The other node, the right key: the data is back.
        self.stage(self.n2, vol, staging, cap)
        self.n2.publish(vol, staging, target, cap, readonly=True)
        with open(os.path.join(target, "data.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.n2.unpublish(vol, target)
        self.n2.unstage(vol, staging)
        self.nothing_left(self.n2, vol)
        return vol

    def encrypted_expand(self):
        cap = mount_cap("ext4")
        vol = self.create("pvc-%s-luks-grow" % self.mounter, 64 * MiB, cap, fsType="ext4",
                          encrypted="true")
        staging, target = self.paths("%s-luks-grow" % self.mounter)
        self.stage(self.n1, vol, staging, cap)
        self.n1.publish(vol, staging, target, cap)
        name = self.the_dm(vol)
        dm_before = size_of("/dev/mapper/" + name)
        st = os.statvfs(target)
        before = st.f_blocks * st.f_frsize
        self.ctl.ControllerExpandVolume(csi.ControllerExpandVolumeRequest(
            volume_id=vol.volume_id, capacity_range=csi.CapacityRange(required_bytes=160 * MiB),
            secrets=secrets(), volume_capability=cap), timeout=60)
        # NodeExpandVolume carries no passphrase: the mapping grows without it.
        r = self.n1.d.node.NodeExpandVolume(csi.NodeExpandVolumeRequest(
            volume_id=vol.volume_id, volume_path=target,
            capacity_range=csi.CapacityRange(required_bytes=160 * MiB), volume_capability=cap),
            timeout=120)
        self.assertEqual(r.capacity_bytes, 160 * MiB)
        self.assertGreaterEqual(size_of("/dev/mapper/" + name), dm_before + 96 * MiB)
        st = os.statvfs(target)
        self.assertGreaterEqual(st.f_blocks * st.f_frsize, before + 80 * MiB)
        self.assertIn(staging, mounts_below(self.kdir))
        self.n1.unpublish(vol, target)
        self.n1.unstage(vol, staging)
        self.delete(vol)


class TestCryptKrbd(CryptCase):
    mounter = "krbd"

    def test_encrypted__flow_raw_image_wrong_key_other_node_clone(self):
        vol = self.encrypted_flow(export=True)
        # A clone opens with its source's passphrase: the wrapped key travels in the header.
        cap = mount_cap("ext4")
        clone = self.ctl.CreateVolume(csi.CreateVolumeRequest(
            name="pvc-krbd-luks-clone", capacity_range=csi.CapacityRange(required_bytes=64 * MiB),
            volume_capabilities=[cap], secrets=secrets(),
            parameters={"clusterID": "test", "pool": ceph()["pool"], "mounter": "krbd",
                        "fsType": "ext4", "encrypted": "true"},
            volume_content_source=csi.VolumeContentSource(
                volume=csi.VolumeContentSource.VolumeSource(volume_id=vol.volume_id))),
            timeout=300).volume
        self.addCleanup(self.quiet_delete, clone)
        staging, target = self.paths("krbd-luks-clone")
        self.stage(self.n1, clone, staging, cap)
        self.n1.publish(clone, staging, target, cap)
        self.assertTrue(contains(os.path.join(target, "data.bin"), MARKER))
        self.n1.unpublish(clone, target)
        self.n1.unstage(clone, staging)
        self.delete(clone)
        self.delete(vol)

    def quiet_delete(self, vol):
        try:
            self.delete(vol)
        except grpc.RpcError:
            pass

    def test_encrypted__expand_grows_luks_and_filesystem(self):
        self.encrypted_expand()


class TestCryptCrash(CryptCase):
    """The node plugin SIGKILLed at each step of an encrypted first stage (failpoints), then
    restarted and retried like kubelet: the volume converges (staged, data written and read
    back), and after unstage nothing is mapped or open."""
    mounter = "krbd"
    FAILPOINTS = ("node-stage:after-state-luks-formatting", "node-stage:after-luks-format",
                  "node-stage:after-luks-open")

    def node(self, state, failpoints=None):
        env = {"RBDCSI_FAILPOINTS": failpoints} if failpoints else None
        d = Driver("--kubelet-dir=" + self.kdir, "--state-dir=" + state, mode="node",
                   nodeid="k-crash", name="node-k-crash", env=env)
        self.addCleanup(d.stop)
        return d

    def test_crash__every_luks_step_converges(self):
        cap = mount_cap("ext4")
        for i, fp in enumerate(self.FAILPOINTS):
            with self.subTest(failpoint=fp):
                vol = self.create("pvc-luks-crash-%d" % i, 64 * MiB, cap, fsType="ext4",
                                  encrypted="true")
                staging, target = self.paths("luks-crash-%d" % i)
                state = os.path.join(self.kdir, "crash-state-%d" % i)
                req = csi.NodeStageVolumeRequest(
                    volume_id=vol.volume_id, staging_target_path=staging,
                    volume_capability=cap, volume_context=vol.volume_context,
                    secrets=crypt_secrets())
                d = self.node(state, fp)
                with self.assertRaises(grpc.RpcError) as e:
                    d.node.NodeStageVolume(req, timeout=180)
                self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
                d.proc.wait(30)
                d.stop()
                d = self.node(state)
                d.node.NodeStageVolume(req, timeout=180)
                with open(os.path.join(staging, "after-crash"), "wb") as f:
                    f.write(MARKER)
                    os.fsync(f.fileno())
                d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
                    volume_id=vol.volume_id, staging_target_path=staging), timeout=120)
                self.nothing_open()
                self.assertEqual(krbd_devices(), {})
                # Staged again: the same key opens it, the data is there.
                d.node.NodeStageVolume(req, timeout=180)
                with open(os.path.join(staging, "after-crash"), "rb") as f:
                    self.assertEqual(f.read(), MARKER)
                d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
                    volume_id=vol.volume_id, staging_target_path=staging), timeout=120)
                self.nothing_open()
                d.stop()
                self.delete(vol)


class TestCryptNbd(CryptCase):
    mounter = "rbd-nbd"

    def test_encrypted__flow_raw_device_wrong_key_other_node(self):
        vol = self.encrypted_flow(export=False)
        self.delete(vol)


if __name__ == "__main__":
    unittest.main(verbosity=2)
