# SPDX-License-Identifier: Apache-2.0
"""Helpers for the integration tests: start the real rbdcsi binary on a Unix socket, talk CSI to it
over gRPC (grpcio, stubs generated from the pinned csi.proto into build/py), reach the throwaway
Ceph cluster the harness started (tests/ceph/ceph-up.sh exports RBDCSI_TEST_*).

Runs with /usr/bin/python3 (Debian's python3-grpcio); never with a pyenv interpreter.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(TOP, os.environ.get("B", "build"))
sys.path.insert(0, os.path.join(TOP, "build", "py"))

import grpc  # noqa: E402
import csi_pb2 as csi  # noqa: E402
import csi_pb2_grpc as csi_grpc  # noqa: E402

RBDCSI = os.environ.get("RBDCSI", os.path.join(BUILD, "rbdcsi"))
LOG_DIR = os.environ.get("RBDCSI_TEST_LOG_DIR") or tempfile.mkdtemp(prefix="rbdcsi-logs.")
os.makedirs(LOG_DIR, exist_ok=True)

MiB = 1024 * 1024
GiB = 1024 * MiB


def ceph():
    """The test cluster's settings, or None when no cluster runs."""
    if not os.environ.get("RBDCSI_TEST_MONITORS"):
        return None
    return {
        "monitors": os.environ["RBDCSI_TEST_MONITORS"],
        "user": os.environ["RBDCSI_TEST_USER"],
        "key": os.environ["RBDCSI_TEST_KEY"],
        "pool": os.environ.get("RBDCSI_TEST_POOL", "rbd"),
        "pool2": os.environ.get("RBDCSI_TEST_POOL2", "rbd2"),
        "conf": os.environ.get("CEPH_CONF"),
    }


def monitors_list():
    """RBDCSI_TEST_MONITORS as a --config "monitors" list (an address vector is one entry)."""
    m = ceph()["monitors"]
    return [m] if m.startswith("[") else m.split(",")


# The skip reasons of need_ceph and need_root: run.py fails these skips when the run promised
# Ceph or root (RBDCSI_REQUIRE_CEPH=1, RBDCSI_REQUIRE_ROOT=1: make check sets them).
SKIP_NO_CEPH = "no test Ceph cluster (run through make check)"
SKIP_NO_ROOT = "needs root"


def need_ceph(test):
    return unittest.skipUnless(ceph(), SKIP_NO_CEPH)(test)


def need_root(test):
    return unittest.skipUnless(os.geteuid() == 0, SKIP_NO_ROOT)(test)


def secrets():
    c = ceph()
    return {"userID": c["user"], "userKey": c["key"]}


def write_config(directory, clusters=None):
    """Writes a --config file for the test cluster (clusterID 'test') and returns its path."""
    c = ceph()
    if clusters is None:
        clusters = []
        if c:
            mons = monitors_list()
            clusters.append({"clusterID": "test", "monitors": mons})
            clusters.append({"clusterID": "test-ns", "monitors": mons,
                             "radosNamespace": "ns1"})
        # A cluster nobody listens for: calls to it must fail fast, not hang.
        clusters.append({"clusterID": "dead", "monitors": ["127.0.0.1:1"]})
    path = os.path.join(directory, "config.json")
    with open(path, "w") as f:
        json.dump(clusters, f)
    return path


class Driver:
    """One rbdcsi process serving on a socket in a private directory."""

    _count = 0

    def __init__(self, *extra, mode="all", nodeid="node-1", config=True, env=None,
                 wait=True, valgrind=None, name=None):
        Driver._count += 1
        self.dir = tempfile.mkdtemp(prefix="rbdcsi-test.")
        self.socket = os.path.join(self.dir, "csi.sock")
        self.endpoint = "unix://" + self.socket
        self.name = name or "driver-%d" % Driver._count
        self.log_path = os.path.join(LOG_DIR, "%s-%d.log" % (self.name, os.getpid()))
        args = [RBDCSI, "--mode=" + mode, "--endpoint=" + self.endpoint,
                "--state-dir=" + os.path.join(self.dir, "state"), "--log-level=debug",
                "--kubelet-dir=" + self.dir,
                "--grace-period=5"]
        if nodeid and mode != "controller":
            args.append("--nodeid=" + nodeid)
        if config is True:
            args.append("--config=" + write_config(self.dir))
        elif config:
            args.append("--config=" + config)
        args += list(extra)
        if valgrind:
            args = valgrind + args
        self.args = args
        child_env = dict(os.environ)
        child_env.pop("RBDCSI_TEST_KEY", None)  # the driver never needs it from the env
        if env:
            child_env.update(env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=child_env, stdin=subprocess.DEVNULL)
        self.channel = None
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rbdcsi exited with %d: %s" % (self.proc.returncode,
                                                                  self.log_text()[-2000:]))
            if os.path.exists(self.socket):
                self.connect()
                try:
                    r = self.identity.Probe(csi.ProbeRequest(), timeout=5)
                    if r.ready.value:
                        return
                except grpc.RpcError:
                    pass
            time.sleep(0.02)
        raise RuntimeError("rbdcsi did not become ready: " + self.log_text()[-2000:])

    def connect(self):
        if self.channel:
            return
        self.channel = grpc.insecure_channel(self.endpoint)
        self.identity = csi_grpc.IdentityStub(self.channel)
        self.controller = csi_grpc.ControllerStub(self.channel)
        self.node = csi_grpc.NodeStub(self.channel)

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def send(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30, keep=False):
        """Stops the process; returns its exit code. keep: leave the directory (a crash
        test looks at what the killed process left)."""
        if self.channel:
            self.channel.close()
            self.channel = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if not keep:
            self.remove_dir()
        return self.proc.returncode

    def remove_dir(self):
        """Removes the private directory, but never across a mount: an rbd-fuse mount inside
        would turn the removal into the deletion of the image."""
        with open("/proc/self/mounts") as f:
            if any(l.split()[1].startswith(self.dir + "/") or l.split()[1] == self.dir
                   for l in f):
                return
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self):
        return self.stop(signal.SIGKILL, keep=True)


def code_of(fn, *args, **kw):
    """Calls fn and returns (grpc.StatusCode, details); OK and the response when it succeeds."""
    try:
        return grpc.StatusCode.OK, fn(*args, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()


def mount_cap(fs_type="", mode=csi.VolumeCapability.AccessMode.SINGLE_NODE_WRITER, flags=()):
    return csi.VolumeCapability(
        mount=csi.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=list(flags)),
        access_mode=csi.VolumeCapability.AccessMode(mode=mode))


def block_cap(mode=csi.VolumeCapability.AccessMode.SINGLE_NODE_WRITER):
    return csi.VolumeCapability(block=csi.VolumeCapability.BlockVolume(),
                                access_mode=csi.VolumeCapability.AccessMode(mode=mode))


def ceph_cli(*args, timeout=30, check=True):
    """Runs a Ceph CLI tool as client.admin against the test cluster; returns stdout."""
    c = ceph()
    r = subprocess.run([args[0], "-c", c["conf"], *args[1:]], capture_output=True, text=True,
                       timeout=timeout, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def pool_images(pool=None):
    pool = pool or ceph()["pool"]
    return sorted(ceph_cli("rbd", "ls", pool).split())


def pool_objects(pool=None):
    pool = pool or ceph()["pool"]
    return sorted(ceph_cli("rados", "-p", pool, "ls").split())


def omap_keys(obj, pool=None):
    pool = pool or ceph()["pool"]
    r = ceph_cli("rados", "-p", pool, "listomapkeys", obj, check=False)
    return sorted(r.split())


def journal_state(pool=None):
    """Every rbdcsi journal object and directory key of a pool: what crash tests compare."""
    objs = [o for o in pool_objects(pool) if o.startswith("rbdcsi.")]
    keys = {}
    for o in objs:
        if o in ("rbdcsi.volumes", "rbdcsi.snapshots"):
            keys[o] = omap_keys(o, pool)
    return {"objects": objs, "directory": keys, "images": pool_images(pool)}


def sc_params(**extra):
    p = {"clusterID": "test", "pool": ceph()["pool"]}
    p.update(extra)
    return p
