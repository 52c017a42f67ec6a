# SPDX-License-Identifier: Apache-2.0
"""Issue 12, paths and ownership 3, 4 and 6, end to end on the real binary, a real Ceph and the
rbd-fuse mapper (root only):
- mkfsOptions, mapOptions, unmapOptions pass per-tool allowlists at CreateVolume and again at
  NodeStageVolume (a volume context may come from an edited StorageClass or a static PV):
  `-d etc` (mke2fs copies the node's /etc into the volume), `-p` (mkfs.xfs protofile), rbd-nbd's
  `log_file`/`admin_socket` are refused with INVALID_ARGUMENT naming the field and the option;
- pool, namespace and image names that a Ceph tool would read as options (`--id=admin`, `-c`)
  are refused at both places;
- the cephx key is not readable through /proc of the long-lived rbd-fuse (fds, environ,
  cmdline) once the volume is staged."""
import os
import stat
import subprocess
import unittest

import grpc

from lib import MiB, Driver, block_cap, code_of, csi, mount_cap, need_ceph, need_root, \
    sc_params, secrets

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def mounts_below(path):
    with open("/proc/self/mounts") as f:
        return [l.split()[1] for l in f if l.split()[1].startswith(path)]


def rbd_fuse_pids(below=None):
    """rbd-fuse processes; with below, only those whose command line names that directory
    (the plugin under test's state dir: other runs on the machine have their own)."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % p) as f:
                if f.read().strip() == "rbd-fuse" and \
                        (below is None or below.encode() in cmdline(int(p))):
                    pids.append(int(p))
        except OSError:
            pass
    return pids


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read()


def quietly(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass


@need_ceph
@need_root
class TestNodeOptions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Driver(mode="all", name="node-options")
        cls.kdir = cls.d.dir

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        left = mounts_below(cls.kdir)
        assert not left, left

    def create(self, name, cap=None, size=64 * MiB, **params):
        params.setdefault("mounter", "fuse")
        vol = self.d.controller.CreateVolume(csi.CreateVolumeRequest(
            name=name, capacity_range=csi.CapacityRange(required_bytes=size),
            volume_capabilities=[cap or mount_cap()], parameters=sc_params(**params),
            secrets=secrets()), timeout=60).volume
        self.addCleanup(quietly, self.delete, vol)
        return vol

    def delete(self, vol):
        self.d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vol.volume_id,
                                                               secrets=secrets()), timeout=60)

    def create_code(self, name, cap=None, **params):
        params.setdefault("mounter", "fuse")
        code, resp = code_of(self.d.controller.CreateVolume, csi.CreateVolumeRequest(
            name=name, capacity_range=csi.CapacityRange(required_bytes=64 * MiB),
            volume_capabilities=[cap or mount_cap()], parameters=sc_params(**params),
            secrets=secrets()), timeout=60)
        if code == grpc.StatusCode.OK:
            self.addCleanup(quietly, self.delete, resp.volume)
        return code, resp

    def staging(self, name):
        path = os.path.join(self.kdir, "plugins", "staging", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def stage(self, vol, staging, cap, ctx):
        self.addCleanup(quietly, self.unstage, vol, staging)
        return code_of(self.d.node.NodeStageVolume, csi.NodeStageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
            volume_context=ctx, secrets=secrets()), timeout=120)

    def unstage(self, vol, staging):
        self.d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging), timeout=120)

    def assert_invalid(self, code, msg, *words):
        self.assertEqual(code, INVALID, msg)
        for w in words:
            self.assertIn(w, msg)

    # ---- CreateVolume ----

    def test_create__mkfs_options_that_read_node_files_refused(self):
        for i, (fs, opts, opt) in enumerate([("ext4", "-d etc", "'-d'"),
                                             ("ext4", "-qdetc", "'-d'"),
                                             ("ext4", "-z undo", "'-z'"),
                                             ("xfs", "-p proto", "'-p'"),
                                             ("xfs", "-d name=img", "'-d name'")]):
            code, msg = self.create_code("pvc-opt-mkfs-%d" % i, fsType=fs, mkfsOptions=opts)
            self.assert_invalid(code, msg, "mkfsOptions", opt)
        code, msg = self.create_code("pvc-opt-mkfs-ok", mkfsOptions="-m0 -L data -E nodiscard")
        self.assertEqual(code, grpc.StatusCode.OK, msg)

    def test_create__nbd_log_and_admin_socket_options_refused(self):
        for i, opts in enumerate(["nbd:log_file=x", "nbd:admin_socket=x", "nbd:log-file=x",
                                  "nbd:keyring=x", "krbd:secret=x"]):
            code, msg = self.create_code("pvc-opt-map-%d" % i, mapOptions=opts)
            self.assert_invalid(code, msg, "mapOptions", opts.split(":")[1].split("=")[0])
        code, msg = self.create_code("pvc-opt-unmap", unmapOptions="nbd:log_file=x")
        self.assert_invalid(code, msg, "unmapOptions", "log_file")

    def test_create__names_that_are_options_refused(self):
        code, msg = self.create_code("pvc-opt-pool", pool="-c")
        self.assert_invalid(code, msg, "pool '-c'")
        code, msg = self.create_code("pvc-opt-prefix", volumeNamePrefix="-c")
        self.assert_invalid(code, msg, "volumeNamePrefix")

    # ---- NodeStageVolume with a volume context that no CreateVolume checked ----

    def assert_nothing_staged(self, staging, image):
        self.assertEqual(mounts_below(staging), [])
        for pid in rbd_fuse_pids(self.d.dir):
            self.assertNotIn(image.encode(), cmdline(pid))

    def test_stage__mkfs_d_from_volume_context_refused(self):
        cap = mount_cap("ext4")
        vol = self.create("pvc-opt-stage-mkfs", cap)
        image = vol.volume_context["imageName"]
        for i, opts in enumerate(["-d etc", "-detc", "-j -d etc", "-l bad", "-E root_owner=0:0"]):
            ctx = dict(vol.volume_context)
            ctx["mkfsOptions"] = opts
            staging = self.staging("mkfs-%d" % i)
            code, msg = self.stage(vol, staging, cap, ctx)
            self.assert_invalid(code, msg, "volume_context", "mkfsOptions")
            self.assert_nothing_staged(staging, image)
        xcap = mount_cap("xfs")
        ctx = dict(vol.volume_context)
        ctx["mkfsOptions"] = "-p proto"
        code, msg = self.stage(vol, self.staging("mkfs-xfs"), xcap, ctx)
        self.assert_invalid(code, msg, "volume_context", "mkfsOptions", "'-p'")

    def test_stage__image_name_that_is_an_option_refused(self):
        cap = mount_cap("ext4")
        vol = self.create("pvc-opt-stage-name", cap)
        for i, (key, value) in enumerate([("imageName", "--id=admin"), ("imageName", "-c"),
                                          ("imageName", "--conf=x"), ("pool", "-c"),
                                          ("radosNamespace", "--keyring=x")]):
            ctx = dict(vol.volume_context)
            ctx[key] = value
            staging = self.staging("name-%d" % i)
            code, msg = self.stage(vol, staging, cap, ctx)
            self.assert_invalid(code, msg, "volume_context", key)
            self.assertEqual(mounts_below(staging), [])
            for pid in rbd_fuse_pids(self.d.dir):
                self.assertNotIn(value.encode(), cmdline(pid))

    def test_stage__map_options_from_volume_context_refused(self):
        cap = block_cap()
        vol = self.create("pvc-opt-stage-map", cap)
        for i, (mounter, opts) in enumerate([("rbd-nbd", "nbd:log_file=x"),
                                             ("rbd-nbd", "nbd:admin_socket=x"),
                                             ("krbd", "secret=x"),
                                             ("fuse", "fuse:x")]):
            ctx = dict(vol.volume_context)
            ctx["mounter"] = mounter
            ctx["mapOptions"] = opts
            code, msg = self.stage(vol, self.staging("map-%d" % i), cap, ctx)
            self.assert_invalid(code, msg, "volume_context", "mapOptions")
        ctx = dict(vol.volume_context)
        ctx["unmapOptions"] = "krbd:lazy"
        code, msg = self.stage(vol, self.staging("unmap"), cap, ctx)
        self.assert_invalid(code, msg, "volume_context", "unmapOptions", "lazy")

    def test_stage__mount_flags_naming_devices_refused(self):
        """Mount flags that name a device (an external journal or log: the kernel writes
        there), panic the node on an error, or skip the journal replay are refused with the
        option named, before anything is mapped; ordinary ones mount."""
        for i, (fs, flag, word) in enumerate([("ext4", "journal_path=/dev/sda", "journal_path"),
                                              ("ext4", "journal_dev=2049", "journal_dev"),
                                              ("ext4", "errors=panic", "errors"),
                                              ("ext4", "noload", "noload"),
                                              ("xfs", "logdev=/dev/sda", "logdev"),
                                              ("xfs", "rtdev=/dev/sda", "rtdev"),
                                              ("ext4", "bind", "bind"),
                                              ("ext4", "remount", "remount")]):
            vol = self.create("pvc-opt-flag-%d" % i, mount_cap(fs),
                              size=320 * MiB if fs == "xfs" else 64 * MiB, fsType=fs)
            staging = self.staging("flag-%d" % i)
            code, msg = self.stage(vol, staging, mount_cap(fs, flags=[flag]), vol.volume_context)
            self.assert_invalid(code, msg, "volume_capability", word)
            self.assert_nothing_staged(staging, vol.volume_context["imageName"])
            code, msg = self.create_code("pvc-opt-flag-c%d" % i, mount_cap(fs, flags=[flag]),
                                         fsType=fs)
            self.assert_invalid(code, msg, "volume_capabilities", word)
        vol = self.create("pvc-opt-flag-ok", mount_cap("ext4"), fsType="ext4")
        staging = self.staging("flag-ok")
        cap = mount_cap("ext4", flags=["noatime", "data=ordered", "errors=remount-ro"])
        code, msg = self.stage(vol, staging, cap, vol.volume_context)
        self.assertEqual(code, grpc.StatusCode.OK, msg)
        self.assertEqual(mounts_below(staging), [staging])

    # ---- the key through /proc ----

    def test_stage__key_not_readable_through_proc(self):
        key = secrets()["userKey"].encode()
        cap = mount_cap("ext4")
        vol = self.create("pvc-opt-key", cap)
        image = vol.volume_context["imageName"]
        staging = self.staging("key")
        code, msg = self.stage(vol, staging, cap, vol.volume_context)
        self.assertEqual(code, grpc.StatusCode.OK, msg)
        pids = [p for p in rbd_fuse_pids() if image.encode() in cmdline(p)]
        self.assertEqual(len(pids), 1, pids)
        pid = pids[0]
        self.assertFalse(key in cmdline(pid), "the key is in the cmdline")
        with open("/proc/%d/environ" % pid, "rb") as f:
            self.assertFalse(key in f.read(), "the key is in the environment")
        checked = []
        for fd in os.listdir("/proc/%d/fd" % pid):
            path = "/proc/%d/fd/%s" % (pid, fd)
            try:
                target = os.readlink(path)
                st = os.stat(path)
            except OSError:
                continue
            # Regular files (the memfd, the log); pipes, sockets and /dev/fuse are not
            # opened: reading them would steal the daemon's own traffic.
            if not stat.S_ISREG(st.st_mode):
                continue
            with open(path, "rb") as f:
                data = f.read()
            checked.append(target)
            # assertFalse, not assertNotIn: a failure must not print the key.
            self.assertFalse(key in data, "the key is readable through %s (%s)" % (path, target))
        self.assertTrue(any(t.startswith("/memfd:rbdcsi-key") for t in checked), checked)
        # And the image name went in as "--image=NAME", never as a separate word.
        self.assertIn(b"--image=" + image.encode() + b"\0", cmdline(pid))
        self.unstage(vol, staging)
        self.assertEqual(mounts_below(staging), [])


if __name__ == "__main__":
    unittest.main()
