#!/usr/bin/python3
"""Real Kubernetes end to end for rbdcsi (issue 8): etcd, kube-apiserver, controller-manager,
scheduler, containerd and a kubelet on this machine, the CSI sidecars and rbdcsi as host
processes, the deploy/ objects, and a scenario whose every step prints PASS or FAIL.

Run through tests/e2e-k8s/run.sh (`make e2e-k8s`), which installs packages, builds the
binaries and the images and passes their paths here:

  e2e.py --bin DIR --images DIR --rbdcsi build/rbdcsi --kustomize PATH \
         [--rbdcsi-image build/image/rbdcsi.oci.tar]                     run it all
  e2e.py --clean                                                     only clean up

Everything binds to 127.0.0.1, pods use the host network, and the node is named 127.0.0.1.
State lives in /var/lib/rbdcsi-e2e and /run/rbdcsi-e2e; every process we start leaves a pid
file there, and the pre-clean (also run at the end) acts only on what those name.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
E2E = "/var/lib/rbdcsi-e2e"
RUN = "/run/rbdcsi-e2e"
PIDS = os.path.join(RUN, "pids")
LOGS = os.path.join(E2E, "logs")
PKI = os.path.join(E2E, "pki")
KUBECONFIG = os.path.join(E2E, "admin.kubeconfig")
KUBELET_DIR = "/var/lib/kubelet"
DRIVER = "rbdcsi.io"
TOPOLOGY = "topology.rbdcsi.io/zone=e2e-a"  # the node's zone (step_topology)
NODE = "127.0.0.1"
NS = "rbdcsi"
CTRL_SOCK = os.path.join(RUN, "controller", "csi.sock")
NODE_SOCK = os.path.join(KUBELET_DIR, "plugins", DRIVER, "csi.sock")
STATE_DIR = os.path.join(E2E, "rbdcsi-state")
SYSCTL_SAVE = os.path.join(E2E, "sysctl.saved")
# Says that KUBELET_DIR is ours to unmount and remove (main() refuses to start on one that is
# not empty and not marked).
KUBELET_MARK = os.path.join(E2E, "kubelet-dir-ours")
POD_LOGS = os.path.join(E2E, "pod-logs")
# The kubelet links every container log here (a fixed path); we remove the links to POD_LOGS.
CONTAINER_LOG_LINKS = "/var/log/containers"
# The sysctls a kubelet with protectKernelDefaults=false sets (pkg/kubelet/cm); restored at
# the end to what they were before.
SYSCTLS = ["vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
           "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"]
PORTS = {"etcd": 23790, "etcd-peer": 23800, "apiserver": 16443, "kubelet": 10250,
         "kubelet-healthz": 10248, "kcm": 10257, "scheduler": 10259}

T0 = time.time()
RESULTS = []


def log(msg):
    print("[%6.1fs] %s" % (time.time() - T0, msg), flush=True)


class Failed(Exception):
    pass


def run(argv, check=True, input=None, timeout=120, env=None):
    p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                       env=env)
    if check and p.returncode != 0:
        raise Failed("%s: exit %d: %s" % (" ".join(argv[:4]), p.returncode,
                                          (p.stderr or p.stdout).strip()[-2000:]))
    return p


def wait_for(what, fn, timeout=120, interval=0.5):
    """Calls fn until it returns something true, and returns that; raises Failed on timeout."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - the last error goes into the message
            last = e
        if time.time() > deadline:
            raise Failed("timed out after %ds waiting for %s%s" %
                         (timeout, what, (": %s" % last) if last else ""))
        time.sleep(interval)


# --- processes ----------------------------------------------------------------------------

def start(name, argv, env=None):
    """Starts argv in its own session, logging to LOGS/name.log, with a pid file."""
    os.makedirs(PIDS, exist_ok=True)
    os.makedirs(LOGS, exist_ok=True)
    out = open(os.path.join(LOGS, name + ".log"), "ab")
    child_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "HOME": "/root", "LANG": "C.UTF-8"}
    child_env.update(env or {})
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, env=child_env)
    out.close()
    with open(os.path.join(PIDS, name + ".pid"), "w") as f:
        f.write("%d %s\n" % (p.pid, start_time(p.pid)))
    return p


def start_time(pid):
    """The process's start time in clock ticks since boot: with the pid, it names one process
    (a pid alone may have been reused since)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid, started):
    """True while that process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if fields[0] == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)  # ours: reap it
        except ChildProcessError:
            pass
        return False
    return fields[19] == started


def stop(name, timeout=20):
    """Stops what PIDS/name.pid names (its whole process group), if that process still runs."""
    path = os.path.join(PIDS, name + ".pid")
    try:
        pid_s, started = open(path).read().split()
    except (OSError, ValueError):
        return
    pid = int(pid_s)
    if pid_alive(pid, started):
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.time() + wait
            while time.time() < deadline and pid_alive(pid, started):
                time.sleep(0.1)
            if not pid_alive(pid, started):
                break
    os.unlink(path)


def processes_naming(path, comm=None):
    """PIDs whose command line mentions path (and whose name is comm, if given)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            cmd = open("/proc/%s/cmdline" % d, "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if path in cmd and (comm is None or cmd.split(" ", 1)[0].endswith("/" + comm) or
                            cmd.split(" ", 1)[0] == comm):
            found.append(int(d))
    return found


# --- mounts and cleanup -------------------------------------------------------------------

def mounts_under(*prefixes):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if any(mp == p or mp.startswith(p.rstrip("/") + "/") for p in prefixes):
                out.append(mp)
    return out


def umount_all(*prefixes):
    for _ in range(5):
        mps = mounts_under(*prefixes)
        if not mps:
            return
        for mp in sorted(mps, key=len, reverse=True):
            if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mp], capture_output=True)


def loops_backed_by(prefix):
    p = run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"], check=False)
    try:
        devs = json.loads(p.stdout or "{}").get("loopdevices", [])
    except ValueError:
        return []
    return [d["name"] for d in devs if (d.get("back-file") or "").startswith(prefix)]


def sysctl_read(k):
    with open("/proc/sys/" + k) as f:
        return f.read().strip()


def sysctls_save():
    if not os.path.exists(SYSCTL_SAVE):
        with open(SYSCTL_SAVE, "w") as f:
            json.dump({k: sysctl_read(k) for k in SYSCTLS if os.path.exists("/proc/sys/" + k)}, f)


def sysctls_restore():
    try:
        saved = json.load(open(SYSCTL_SAVE))
    except (OSError, ValueError):
        return
    for k, v in saved.items():
        try:
            if sysctl_read(k) != v:
                with open("/proc/sys/" + k, "w") as f:
                    f.write(v)
                log("restored sysctl %s = %s" % (k.replace("/", "."), v))
        except OSError as e:
            log("could not restore sysctl %s: %s" % (k, e))
    os.unlink(SYSCTL_SAVE)


# Reverse start order. containerd (tests/e2e-k8s/runtime/lib.sh) is stopped by rt_clean, after
# the kubelet (which would restart pods) and before the control plane.
ORDER_NODE = ["csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter",
              "snapshot-controller", "registrar", "rbdcsi-node", "rbdcsi-controller", "kubelet"]
ORDER_CP = ["kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
RUNTIME_LIB = os.path.join(ROOT, "tests/e2e-k8s/runtime/lib.sh")


def runtime(script, check=True):
    """Runs script after sourcing the runtime library set up for our directories."""
    return run(["bash", "-c", "set -euo pipefail; . \"$0\"; rt_setup \"$1\" \"$2\"; " + script,
                RUNTIME_LIB, E2E, RUN], timeout=300, check=check)


def cgroups_clean():
    """The kubelet's /kubepods cgroups (cgroup v1: one tree per controller), deepest first."""
    for tree in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", tree, "kubepods")
        if os.path.isdir(top):
            for d, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def clean(ceph_down=True):
    """Idempotent: stops what our pid files name, in reverse start order, unmounts what lies
    under our directories and (when we made it) the kubelet's, frees our loop devices,
    restores sysctls."""
    kubelet_dir_ours = os.path.exists(KUBELET_MARK)
    for name in ORDER_NODE:
        stop(name)
    # Every container (via runc, so also after a crash), containerd, its shims, its mounts.
    if os.path.isdir(E2E) or os.path.isdir(RUN):
        p = runtime("RT_KEEP_LOGS=1 rt_clean", check=False)
        if p.stderr.strip():
            log(p.stderr.strip())
    cgroups_clean()
    for name in ORDER_CP:
        stop(name)
    if os.path.isdir(PIDS):
        for name in os.listdir(PIDS):
            stop(name[:-4])
    # rbd-fuse children of the node plugin survive it by design; they serve our state dir.
    for dev in loops_backed_by(STATE_DIR):
        run(["losetup", "-d", dev], check=False)
    if kubelet_dir_ours:
        umount_all(os.path.join(KUBELET_DIR, "pods"), os.path.join(KUBELET_DIR, "plugins"))
    for pid in processes_naming(STATE_DIR, comm="rbd-fuse"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    umount_all(E2E, RUN)
    if kubelet_dir_ours:
        umount_all(KUBELET_DIR)
    if os.path.isdir(CONTAINER_LOG_LINKS):
        for f in os.listdir(CONTAINER_LOG_LINKS):
            link = os.path.join(CONTAINER_LOG_LINKS, f)
            if os.path.islink(link) and os.readlink(link).startswith(POD_LOGS + "/"):
                os.unlink(link)
        try:
            os.rmdir(CONTAINER_LOG_LINKS)  # only when empty
        except OSError:
            pass
    sysctls_restore()
    if os.path.exists("/sys/class/net/rbdcsie2e0"):
        run(["ip", "link", "delete", "rbdcsie2e0"], check=False)
    ceph_dir_file = os.path.join(E2E, "ceph-dir")
    if ceph_down and os.path.exists(ceph_dir_file):
        d = open(ceph_dir_file).read().strip()
        if d and os.path.isdir(d):
            run([os.path.join(ROOT, "tests/ceph/ceph-down.sh")], check=False,
                env=dict(os.environ, CEPH_DIR=d))
        os.unlink(ceph_dir_file)
    if kubelet_dir_ours and os.path.isdir(KUBELET_DIR) and not mounts_under(KUBELET_DIR):
        shutil.rmtree(KUBELET_DIR, ignore_errors=True)
    for d in (RUN, E2E):  # the marker last
        if os.path.isdir(d) and not mounts_under(d):
            shutil.rmtree(d, ignore_errors=True)


# --- the cluster --------------------------------------------------------------------------

def certs():
    """One CA; the apiserver's serving cert; one system:masters client cert used by every
    component, sidecar and kubectl; the service-account key pair."""
    os.makedirs(PKI, exist_ok=True)

    def ossl(*a):
        run(["openssl"] + list(a))

    k = lambda n: os.path.join(PKI, n)  # noqa: E731
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", k("ca.key"),
         "-out", k("ca.crt"), "-days", "2", "-subj", "/CN=rbdcsi-e2e-ca")
    ext = k("apiserver.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,"
                "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
                "extendedKeyUsage=serverAuth\n")
    for name, subj, extfile in (("apiserver", "/CN=kube-apiserver", ext),
                                ("admin", "/O=system:masters/CN=e2e-admin", None)):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", k(name + ".key"),
             "-out", k(name + ".csr"), "-subj", subj)
        a = ["x509", "-req", "-in", k(name + ".csr"), "-CA", k("ca.crt"), "-CAkey", k("ca.key"),
             "-CAcreateserial", "-out", k(name + ".crt"), "-days", "2"]
        if extfile:
            a += ["-extfile", extfile]
        ossl(*a)
    ossl("genrsa", "-out", k("sa.key"), "2048")
    ossl("rsa", "-in", k("sa.key"), "-pubout", "-out", k("sa.pub"))
    b64 = lambda n: base64.b64encode(open(k(n), "rb").read()).decode()  # noqa: E731
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "e2e",
           "clusters": [{"name": "e2e", "cluster": {
               "server": "https://127.0.0.1:%d" % PORTS["apiserver"],
               "certificate-authority-data": b64("ca.crt")}}],
           "users": [{"name": "admin", "user": {"client-certificate-data": b64("admin.crt"),
                                                 "client-key-data": b64("admin.key")}}],
           "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}]}
    with open(KUBECONFIG, "w") as f:
        json.dump(cfg, f)
    os.chmod(KUBECONFIG, 0o600)


class Cluster:
    def __init__(self, args):
        self.bin = args.bin
        self.images = args.images
        self.rbdcsi = os.path.abspath(args.rbdcsi)
        self.kustomize = args.kustomize
        self.rbdcsi_image = args.rbdcsi_image
        self.rbdcsi_ref = None
        if args.rbdcsi_image:
            ref = os.path.join(os.path.dirname(args.rbdcsi_image), "rbdcsi.ref")
            self.rbdcsi_ref = open(ref).read().strip()
        self.ceph = {}

    def b(self, name):
        return os.path.join(self.bin, name)

    def kubectl(self, *a, input=None, check=True, timeout=120):
        return run([self.b("kubectl"), "--kubeconfig", KUBECONFIG] + list(a), input=input,
                   check=check, timeout=timeout)

    def get(self, *a):
        return json.loads(self.kubectl("get", "-o", "json", *a).stdout)

    def apply(self, objs):
        if isinstance(objs, dict):
            objs = [objs]
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                            "items": objs}))

    # -- Ceph --
    def ceph_up(self):
        p = run([os.path.join(ROOT, "tests/ceph/ceph-up.sh")], timeout=180)
        d = p.stdout.strip().splitlines()[-1]
        with open(os.path.join(E2E, "ceph-dir"), "w") as f:
            f.write(d)
        for line in open(os.path.join(d, "env")):
            m = re.match(r"export (\w+)='(.*)'$", line.strip())
            if m:
                self.ceph[m.group(1)] = m.group(2)

    def ceph_cmd(self, *a):
        env = {"CEPH_CONF": self.ceph["CEPH_CONF"], "PATH": os.environ["PATH"]}
        return run(list(a), env=env, timeout=60).stdout

    # -- control plane --
    def control_plane(self):
        k = lambda n: os.path.join(PKI, n)  # noqa: E731
        etcd_url = "http://127.0.0.1:%d" % PORTS["etcd"]
        peer_url = "http://127.0.0.1:%d" % PORTS["etcd-peer"]
        start("etcd", [self.b("etcd"), "--data-dir", os.path.join(E2E, "etcd"),
                       "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                       "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                       "--initial-cluster", "default=" + peer_url, "--unsafe-no-fsync",
                       "--listen-metrics-urls", "http://127.0.0.1:23810", "--log-level", "warn"])
        start("kube-apiserver", [
            self.b("kube-apiserver"), "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(PORTS["apiserver"]),
            "--tls-cert-file", k("apiserver.crt"), "--tls-private-key-file", k("apiserver.key"),
            "--client-ca-file", k("ca.crt"), "--service-account-key-file", k("sa.pub"),
            "--service-account-signing-key-file", k("sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-cluster-ip-range", "10.0.0.0/24", "--authorization-mode", "Node,RBAC",
            "--kubelet-client-certificate", k("admin.crt"), "--kubelet-client-key", k("admin.key"),
            "--kubelet-preferred-address-types", "InternalIP", "--kubelet-port",
            str(PORTS["kubelet"]), "--allow-privileged=true", "--profiling=false",
            "--endpoint-reconciler-type", "none"])
        wait_for("kube-apiserver /readyz", lambda: self.kubectl(
            "get", "--raw", "/readyz", check=False, timeout=10).returncode == 0, timeout=120)
        common = ["--kubeconfig", KUBECONFIG, "--authentication-kubeconfig", KUBECONFIG,
                  "--authorization-kubeconfig", KUBECONFIG, "--leader-elect=false",
                  "--bind-address", "127.0.0.1", "--profiling=false"]
        start("kube-controller-manager", [
            self.b("kube-controller-manager")] + common + [
            "--secure-port", str(PORTS["kcm"]),
            "--service-account-private-key-file", k("sa.key"), "--root-ca-file", k("ca.crt"),
            "--use-service-account-credentials=false", "--controllers", "*,-cloud-node-lifecycle"])
        start("kube-scheduler", [self.b("kube-scheduler")] + common +
              ["--secure-port", str(PORTS["scheduler"])])

    # -- node --
    def node(self):
        with open(KUBELET_MARK, "w") as f:  # before the directory: clean() trusts it
            f.write("%s made by tests/e2e-k8s\n" % KUBELET_DIR)
        os.makedirs(KUBELET_DIR, exist_ok=True)
        # The kubelet needs its root on a shared mount so mounts made by CSI reach pods.
        run(["mount", "--bind", KUBELET_DIR, KUBELET_DIR])
        run(["mount", "--make-rshared", KUBELET_DIR])
        tars = [os.path.join(self.images, t + ".tar") for t in ("pause", "busybox", "postgres")]
        # The sidecar images (images/build.sh, named as deploy/ names them) and the rbdcsi
        # image (make image), so the shipped manifests find every image without a pull.
        sidecars = os.path.join(self.images, "sidecars.list")
        if os.path.exists(sidecars):
            tars += [os.path.join(self.images, t) for t in open(sidecars).read().split()]
        if self.rbdcsi_image:
            tars.append(self.rbdcsi_image)
        runtime("rt_start && rt_import " + " ".join(tars))
        self.check_images()
        sock = os.path.join(RUN, "containerd.sock")
        sysctls_save()
        kcfg = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": "127.0.0.1", "port": PORTS["kubelet"], "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": PORTS["kubelet-healthz"],
            "cgroupDriver": "cgroupfs", "cgroupsPerQOS": True,
            # This machine runs cgroup v1, which Kubernetes >= 1.35 refuses unless told.
            "failCgroupV1": False, "failSwapOn": False,
            "containerRuntimeEndpoint": "unix://" + sock,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": os.path.join(PKI, "ca.crt")}},
            "authorization": {"mode": "AlwaysAllow"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "resolvConf": "/etc/resolv.conf", "serializeImagePulls": False,
            "fileCheckFrequency": "5s", "syncFrequency": "10s",
            "volumeStatsAggPeriod": "10s", "nodeStatusUpdateFrequency": "5s",
            "localStorageCapacityIsolation": True, "podLogsDir": POD_LOGS,
        }
        kpath = os.path.join(E2E, "kubelet.yaml")
        with open(kpath, "w") as f:
            json.dump(kcfg, f)
        start("kubelet", [self.b("kubelet"), "--config", kpath, "--kubeconfig", KUBECONFIG,
                          "--hostname-override", NODE, "--root-dir", KUBELET_DIR,
                          "--cert-dir", os.path.join(E2E, "kubelet-pki"), "--v", "2"])

        def ready():
            n = self.get("node", NODE)
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in n["status"]["conditions"])
        wait_for("node %s Ready" % NODE, ready, timeout=180, interval=1)

    def check_images(self):
        """Every image the shipped manifests reference (rbdcsi retargeted to the image that
        make image built) is in containerd."""
        have = set(runtime("rt_ctr images ls -q").stdout.split())
        want = set()
        for o in self.render():
            spec = o.get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                want.add(c["image"])
        if self.rbdcsi_ref:
            want = {self.rbdcsi_ref if w.split(":")[0] == "localhost/rbdcsi" else w
                    for w in want}
        missing = sorted(want - have)
        # livenessprobe's module is refused by the Go module proxy here: no binary, no image.
        known = [m for m in missing if m.startswith("registry.k8s.io/sig-storage/livenessprobe:")]
        for m in known:
            log("SKIP  image %s: github.com/kubernetes-csi/livenessprobe is refused by the Go "
                "module proxy here (403), so it cannot be built" % m)
        lost = sorted(set(missing) - set(known))
        check("images: the %d images deploy/kubernetes references are in containerd"
              % (len(want) - len(known)), not lost, "missing: %s" % " ".join(lost) if lost else "")

    # -- CSI --
    def render(self):
        """deploy/kubernetes rendered by kustomize: the objects applied as they are, and the
        container args the host processes below take over."""
        p = run([self.kustomize, "build", os.path.join(ROOT, "deploy/kubernetes")])
        return [d for d in yaml.safe_load_all(p.stdout) if d]

    def csi(self):
        objs = self.render()
        by_kind = {}
        for o in objs:
            by_kind.setdefault(o["kind"], []).append(o)
        cluster_id = self.ceph["RBDCSI_TEST_FSID"]
        mons = self.ceph["RBDCSI_TEST_MONITORS"]

        # The ConfigMap's config, with this cluster's ID and monitors: the driver's --config.
        cm = by_kind["ConfigMap"][0]
        conf = json.loads(cm["data"]["config.json"])
        conf[0]["clusterID"] = cluster_id
        conf[0]["monitors"] = [mons]
        cm["data"]["config.json"] = json.dumps(conf, indent=2)
        os.makedirs(os.path.join(E2E, "etc"), exist_ok=True)
        conf_path = os.path.join(E2E, "etc", "config.json")
        with open(conf_path, "w") as f:
            f.write(cm["data"]["config.json"])
        for sc in by_kind["StorageClass"]:
            sc["parameters"]["clusterID"] = cluster_id

        # CRDs for snapshots first, then everything but the two workloads (they run as host
        # processes below, from the same args) and the VolumeSnapshotClass (needs the CRDs).
        crd_dir = os.path.join(self.bin, "crd")
        for f in sorted(os.listdir(crd_dir)):
            self.kubectl("apply", "-f", os.path.join(crd_dir, f))
        for crd in ("volumesnapshotclasses", "volumesnapshotcontents", "volumesnapshots"):
            self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                         "crd/%s.snapshot.storage.k8s.io" % crd)
        # The group snapshot CRDs (issue 15), from the same client module (a bin directory
        # built before build.sh copied them lacks them: then from the Go module cache).
        for f in group_snapshot_crds(crd_dir):
            self.kubectl("apply", "-f", f)
        for crd in ("volumegroupsnapshotclasses", "volumegroupsnapshotcontents",
                    "volumegroupsnapshots"):
            self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                         "crd/%s.groupsnapshot.storage.k8s.io" % crd)
        workloads = {o["metadata"]["name"]: o for o in objs
                     if o["kind"] in ("Deployment", "DaemonSet")}
        self.apply([o for o in objs if o["kind"] not in ("Deployment", "DaemonSet")])
        # The Secret deploy/ leaves to the admin, with the test cluster's user.
        self.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": "rbdcsi-ceph-user", "namespace": NS},
                    "stringData": {"userID": self.ceph["RBDCSI_TEST_USER"],
                                   "userKey": self.ceph["RBDCSI_TEST_KEY"]}})
        start("snapshot-controller", [self.b("snapshot-controller"), "--kubeconfig", KUBECONFIG,
                                      "--leader-election=false", "--http-endpoint=127.0.0.1:18095",
                                      "--feature-gates=CSIVolumeGroupSnapshot=true"])

        os.makedirs(os.path.dirname(CTRL_SOCK), exist_ok=True)
        os.makedirs(os.path.dirname(NODE_SOCK), exist_ok=True)
        os.makedirs(os.path.join(KUBELET_DIR, "plugins_registry"), exist_ok=True)
        loopback = iter(range(19090, 19190))
        for wname, sock, mode in (("rbdcsi-controller", CTRL_SOCK, "controller"),
                                  ("rbdcsi-node", NODE_SOCK, "node")):
            pod = workloads[wname]["spec"]["template"]["spec"]
            for c in pod["containers"]:
                args = []
                for a in c.get("args", []):
                    flag, _, val = a.partition("=")
                    if flag == "--csi-address":
                        a = "--csi-address=" + sock
                    elif flag == "--endpoint":
                        a = "--endpoint=unix://" + sock
                    elif flag == "--config":
                        a = "--config=" + conf_path
                    elif flag == "--nodeid":
                        a = "--nodeid=" + NODE
                    elif flag == "--state-dir":
                        a = "--state-dir=" + STATE_DIR
                    elif flag in ("--metrics-address", "--http-endpoint"):
                        # Everything binds to loopback, on ports of our own.
                        a = "%s=127.0.0.1:%d" % (flag, next(loopback))
                    elif flag == "--leader-election" and val == "true":
                        a = "--leader-election-namespace=" + NS
                        args.append("--leader-election=true")
                    args.append(a)
                name = c["name"]
                if name == "rbdcsi":
                    # This node's zone, for the controller too (Helm: node.topology).
                    argv = [self.rbdcsi] + args + ["--topology=" + TOPOLOGY]
                    if mode == "controller":
                        # The plugin's own socket dir is an emptyDir in the pod.
                        argv.append("--socket-mode=0660")
                    start(wname, argv, env={"CEPH_CONF": "/dev/null"})
                    wait_for(wname + " socket", lambda s=sock: os.path.exists(s), timeout=30)
                elif name == "node-driver-registrar":
                    args = [a for a in args if not a.startswith("--http-endpoint")]
                    start("registrar", [self.b("registrar")] + args + [
                        "--plugin-registration-path=" +
                        os.path.join(KUBELET_DIR, "plugins_registry")])
                elif name == "liveness-probe":
                    log("SKIP  %s/%s: github.com/kubernetes-csi/livenessprobe is refused by the "
                        "Go module proxy here (403 for every version), so it cannot be built"
                        % (wname, name))
                else:
                    start(name, [self.b(name), "--kubeconfig", KUBECONFIG] + args)

        def registered():
            n = self.get("csinode", NODE)
            return any(d["name"] == DRIVER for d in n["spec"].get("drivers") or [])
        wait_for("CSINode %s to list %s" % (NODE, DRIVER), registered, timeout=120, interval=1)


def group_snapshot_crds(crd_dir):
    """The groupsnapshot.storage.k8s.io CRD files: in crd_dir, else in the Go module cache
    (external-snapshotter's client module, the version build.sh pins)."""
    mine = [os.path.join(crd_dir, f) for f in sorted(os.listdir(crd_dir))
            if f.startswith("groupsnapshot.storage.k8s.io_")]
    if mine:
        return mine
    modcache = run(["go", "env", "GOMODCACHE"]).stdout.strip()
    d = os.path.join(modcache, "github.com/kubernetes-csi/external-snapshotter/client/v8@v8.6.0",
                     "config", "crd")
    return [os.path.join(d, f) for f in sorted(os.listdir(d))
            if f.startswith("groupsnapshot.storage.k8s.io_")]


# --- the scenario -------------------------------------------------------------------------

BUSYBOX = "localhost/busybox:e2e"
POSTGRES = "localhost/postgres:e2e"


def pvc(name, sc, size="1Gi", block=False, source=None):
    spec = {"accessModes": ["ReadWriteOnce"], "storageClassName": sc,
            "resources": {"requests": {"storage": size}},
            "volumeMode": "Block" if block else "Filesystem"}
    if source:
        spec["dataSource"] = source
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def pod_spec(claim, cmd, block=False, image=BUSYBOX):
    c = {"name": "c", "image": image, "imagePullPolicy": "Never", "command": ["sh", "-c", cmd]}
    if block:
        c["volumeDevices"] = [{"name": "v", "devicePath": "/dev/xvda"}]
    else:
        c["volumeMounts"] = [{"name": "v", "mountPath": "/data"}]
    return {"hostNetwork": True, "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 5, "enableServiceLinks": False,
            "containers": [c],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}


def pod(name, claim, cmd, block=False, restart="Never"):
    spec = pod_spec(claim, cmd, block)
    spec["restartPolicy"] = restart
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


class Scenario:
    def __init__(self, cl):
        self.cl = cl
        self.sums = {}

    def k(self, *a, **kw):
        return self.cl.kubectl("-n", "default", *a, **kw)

    def bound(self, name, timeout=180):
        wait_for("PVC %s Bound" % name, lambda: self.cl.get("-n", "default", "pvc", name)
                 ["status"].get("phase") == "Bound", timeout=timeout)
        return self.cl.get("-n", "default", "pvc", name)["spec"]["volumeName"]

    def run_pod(self, name, claim, cmd, block=False, timeout=240):
        """Runs a pod to completion; returns its log; raises Failed if it did not succeed."""
        self.cl.apply(pod(name, claim, cmd, block))

        def done():
            st = self.cl.get("-n", "default", "pod", name)["status"]
            if st.get("phase") in ("Succeeded", "Failed"):
                return st["phase"]
            return None
        phase = wait_for("pod %s to finish" % name, done, timeout=timeout, interval=1)
        out = self.k("logs", name, check=False).stdout
        if phase != "Succeeded":
            raise Failed("pod %s %s; its log: %s; events: %s" % (
                name, phase, out.strip()[-800:], self.events(name)))
        return out

    def events(self, name):
        p = self.k("get", "events", "--field-selector", "involvedObject.name=" + name,
                   "-o", "custom-columns=REASON:.reason,MSG:.message", "--no-headers",
                   check=False)
        return " | ".join(p.stdout.strip().splitlines()[-6:])

    def delete_pod(self, name, pv):
        """Deletes the pod, then raises Failed unless the node let go of pv."""
        self.k("delete", "pod", name, "--wait=true", "--timeout=120s")
        left = self.node_leftovers(pv)
        if left:
            raise Failed("after pod %s went: %s" % (name, left))

    def node_leftovers(self, pv):
        """What the node still holds of pv once its pod is gone ('' if nothing): a
        VolumeAttachment, a mount, a loop device, an rbd-fuse process of the driver's."""
        def no_va():
            vas = self.cl.get("volumeattachment")["items"]
            return not [v for v in vas if v["spec"]["source"].get("persistentVolumeName") == pv]
        try:
            wait_for("VolumeAttachment of %s to go" % pv, no_va, timeout=180, interval=1)
        except Failed as e:
            return str(e)
        mounts = [m for m in mounts_under(os.path.join(KUBELET_DIR, "pods"),
                                          os.path.join(KUBELET_DIR, "plugins"), STATE_DIR)
                  if pv in m or "/plugins/kubernetes.io/csi/" in m or
                  m.startswith(STATE_DIR + "/")]
        loops = loops_backed_by(STATE_DIR)
        fuse = processes_naming(STATE_DIR, comm="rbd-fuse")
        if mounts or loops or fuse:
            return "mounts %s, loop devices %s, rbd-fuse pids %s" % (mounts, loops, fuse)
        return ""

    def exec(self, podname, *cmd, timeout=60):
        return self.k("exec", podname, "--", *cmd, timeout=timeout).stdout

    # 1-4
    def step_filesystem(self):
        self.cl.apply(pvc("data", "rbdcsi-ext4"))
        self.pv = self.bound("data")
        check("a PVC on rbdcsi-ext4 becomes Bound (CreateVolume)", bool(self.pv), self.pv)
        out = self.run_pod("writer", "data",
                           "dd if=/dev/urandom of=/data/f bs=1M count=16 2>/dev/null && "
                           "sha256sum /data/f > /data/f.sha256 && sync && cat /data/f.sha256")
        self.sums["data"] = out.split()[0]
        check("a writer pod writes a checksummed file, syncs and exits 0",
              re.fullmatch(r"[0-9a-f]{64}", self.sums["data"]) is not None, self.sums["data"])
        self.k("delete", "pod", "writer", "--wait=true", "--timeout=120s")
        left = self.node_leftovers(self.pv)
        check("the writer pod is deleted: its VolumeAttachment goes, nothing stays mounted or "
              "mapped", not left, left)
        got = self.read_back("reader", "data")
        check("a reader pod reads the file back with the same checksum",
              got == [self.sums["data"]], got)

    def read_back(self, podname, claim):
        """The checksums of /data/f that a pod on claim prints (after sha256sum -c passed)."""
        return self.read_back_df(podname, claim)[0]

    def read_back_df(self, podname, claim):
        """read_back(), and the size of the filesystem the pod sees (kB, from df)."""
        out = self.run_pod(podname, claim, "sha256sum -c /data/f.sha256 && sha256sum /data/f "
                           "&& df -k /data")
        self.delete_pod(podname, self.cl.get("-n", "default", "pvc", claim)["spec"]["volumeName"])
        df = re.findall(r"^\S+\s+(\d+)\s+\d+\s+\d+\s+\d+%\s+/data$", out, re.M)
        return re.findall(r"^([0-9a-f]{64})\s", out, re.M), int(df[0]) if df else 0

    # 5
    def step_block(self):
        self.cl.apply(pvc("raw", "rbdcsi-block", block=True))
        pv = self.bound("raw")
        w = self.run_pod("raw-writer", "raw",
                         "dd if=/dev/urandom of=/tmp/p bs=1M count=8 2>/dev/null && "
                         "dd if=/tmp/p of=/dev/xvda bs=1M conv=fsync 2>/dev/null && "
                         "sha256sum /tmp/p", block=True)
        self.delete_pod("raw-writer", pv)
        r = self.run_pod("raw-reader", "raw",
                         "dd if=/dev/xvda bs=1M count=8 2>/dev/null | sha256sum", block=True)
        self.delete_pod("raw-reader", pv)
        check("a block-mode PVC: raw write in one pod, the same bytes read in a new one",
              w.split()[0] == r.split()[0], "wrote %s read %s" % (w.split()[0], r.split()[0]))

    # 6
    def step_expand(self):
        # xfs: this machine's root lacks CAP_SYS_RESOURCE, so online ext4 growth fails here.
        self.cl.apply(pvc("grow", "rbdcsi-xfs"))
        pv = self.bound("grow")
        self.cl.apply(pod("grower", "grow", "sleep 3600", restart="Always"))
        self.k("wait", "--for=condition=Ready", "pod/grower", "--timeout=240s", timeout=260)
        before = int(self.exec("grower", "df", "-k", "/data").split("\n")[1].split()[1])
        self.k("patch", "pvc", "grow", "-p",
               json.dumps({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}))
        wait_for("PVC grow capacity 2Gi", lambda: self.cl.get("-n", "default", "pvc", "grow")
                 ["status"].get("capacity", {}).get("storage") == "2Gi", timeout=180, interval=1)
        after = wait_for("the pod to see the bigger filesystem", lambda: (lambda n: n if n >
                         before + 900 * 1024 else None)(int(self.exec(
                             "grower", "df", "-k", "/data").split("\n")[1].split()[1])),
                         timeout=120, interval=2)
        self.delete_pod("grower", pv)
        check("the PVC is expanded online (1Gi -> 2Gi) and the pod sees it",
              after > before, "df: %d kB -> %d kB" % (before, after))

    # 7
    def step_snapshot(self):
        self.cl.apply({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                       "metadata": {"name": "data-snap", "namespace": "default"},
                       "spec": {"volumeSnapshotClassName": "rbdcsi-snapclass",
                                "source": {"persistentVolumeClaimName": "data"}}})
        wait_for("VolumeSnapshot data-snap readyToUse", lambda: self.cl.get(
            "-n", "default", "volumesnapshot", "data-snap").get("status", {}).get("readyToUse"),
            timeout=180, interval=1)
        # Restored into a PVC twice the size: the filesystem must fill it (Kubernetes never
        # calls NodeExpandVolume for it; NodeStage grows it).
        self.cl.apply(pvc("data-restore", "rbdcsi-ext4", size="2Gi", source={
            "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
            "name": "data-snap"}))
        self.bound("data-restore")
        restored, restored_kb = self.read_back_df("restore-reader", "data-restore")
        self.cl.apply(pvc("data-clone", "rbdcsi-ext4", source={
            "kind": "PersistentVolumeClaim", "name": "data"}))
        self.bound("data-clone")
        cloned = self.read_back("clone-reader", "data-clone")
        want = [self.sums["data"]]
        check("a VolumeSnapshot becomes ready; a PVC restored from it and a PVC cloned from the "
              "source both hold the original file", restored == want and cloned == want,
              "restore %s, clone %s" % (restored, cloned))
        check("the 2Gi PVC restored from the 1Gi snapshot has a filesystem of about 2 GiB",
              restored_kb > 1800 * 1024, "df: %d kB" % restored_kb)

    # 7b
    def step_group_snapshot(self):
        """Two PVCs written by one pod in lockstep (a fixed-width counter to a, fsync, the same
        to b, fsync), a VolumeGroupSnapshot of both taken while it writes, each member restored
        to a PVC of its own: the restored counters are of one instant (a - b in {0, 1})."""
        for name in ("grp-a", "grp-b"):
            claim = pvc(name, "rbdcsi-ext4")
            claim["metadata"]["labels"] = {"rbdcsi-e2e-group": "lockstep"}
            self.cl.apply(claim)
        for name in ("grp-a", "grp-b"):
            self.bound(name)
        writer = ("i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); "
                  "printf '%010d\\n' $i | dd of=/a/counter conv=notrunc,fsync 2>/dev/null || "
                  "exit 1; printf '%010d\\n' $i | dd of=/b/counter conv=notrunc,fsync "
                  "2>/dev/null || exit 1; done")
        spec = pod_spec("grp-a", writer)
        spec["restartPolicy"] = "Never"
        spec["containers"][0]["volumeMounts"] = [{"name": "a", "mountPath": "/a"},
                                                 {"name": "b", "mountPath": "/b"}]
        spec["volumes"] = [{"name": "a", "persistentVolumeClaim": {"claimName": "grp-a"}},
                           {"name": "b", "persistentVolumeClaim": {"claimName": "grp-b"}}]
        self.cl.apply({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "grp-writer", "namespace": "default"}, "spec": spec})
        wait_for("pod grp-writer running", lambda: self.cl.get(
            "-n", "default", "pod", "grp-writer")["status"].get("phase") == "Running",
            timeout=240, interval=1)
        time.sleep(3)  # the counters are moving
        self.cl.apply({"apiVersion": "groupsnapshot.storage.k8s.io/v1beta2",
                       "kind": "VolumeGroupSnapshotClass",
                       "metadata": {"name": "rbdcsi-groupsnapclass"},
                       "driver": "rbdcsi.io", "deletionPolicy": "Delete",
                       "parameters": {
                           "csi.storage.k8s.io/group-snapshotter-secret-name": "rbdcsi-ceph-user",
                           "csi.storage.k8s.io/group-snapshotter-secret-namespace": NS}})
        self.cl.apply({"apiVersion": "groupsnapshot.storage.k8s.io/v1beta2",
                       "kind": "VolumeGroupSnapshot",
                       "metadata": {"name": "grp", "namespace": "default"},
                       "spec": {"volumeGroupSnapshotClassName": "rbdcsi-groupsnapclass",
                                "source": {"selector": {"matchLabels": {
                                    "rbdcsi-e2e-group": "lockstep"}}}}})
        wait_for("VolumeGroupSnapshot grp readyToUse", lambda: self.cl.get(
            "-n", "default", "volumegroupsnapshot", "grp").get("status", {}).get("readyToUse"),
            timeout=240, interval=1)
        still = self.cl.get("-n", "default", "pod", "grp-writer")["status"].get("phase")
        self.k("delete", "pod", "grp-writer", "--wait=true", "--timeout=120s")
        members = {}
        for vs in self.cl.get("-n", "default", "volumesnapshot")["items"]:
            owners = [o for o in vs["metadata"].get("ownerReferences", [])
                      if o.get("kind") == "VolumeGroupSnapshot" and o.get("name") == "grp"]
            if owners:
                members[vs["spec"]["source"].get("persistentVolumeClaimName")] = \
                    vs["metadata"]["name"]
        if set(members) != {"grp-a", "grp-b"}:
            raise Failed("the group's VolumeSnapshots name PVCs %s" % sorted(members))
        for name in ("grp-a", "grp-b"):
            wait_for("VolumeSnapshot %s readyToUse" % members[name], lambda: self.cl.get(
                "-n", "default", "volumesnapshot", members[name]).get("status", {}).get(
                "readyToUse"), timeout=120, interval=1)
            self.cl.apply(pvc(name + "-restore", "rbdcsi-ext4", source={
                "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                "name": members[name]}))
        for name in ("grp-a-restore", "grp-b-restore"):
            self.bound(name)
        spec = pod_spec("grp-a-restore", "cat /a/counter /b/counter")
        spec["restartPolicy"] = "Never"
        spec["containers"][0]["volumeMounts"] = [{"name": "a", "mountPath": "/a"},
                                                 {"name": "b", "mountPath": "/b"}]
        spec["volumes"] = [
            {"name": "a", "persistentVolumeClaim": {"claimName": "grp-a-restore"}},
            {"name": "b", "persistentVolumeClaim": {"claimName": "grp-b-restore"}}]
        self.cl.apply({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "grp-reader", "namespace": "default"}, "spec": spec})
        wait_for("pod grp-reader to finish", lambda: self.cl.get(
            "-n", "default", "pod", "grp-reader")["status"].get("phase") in (
            "Succeeded", "Failed"), timeout=240, interval=1)
        out = self.k("logs", "grp-reader", check=False).stdout.split()
        self.k("delete", "pod", "grp-reader", "--wait=true", "--timeout=120s")
        counters = [int(x) for x in out if x.isdigit()]
        ok = len(counters) == 2 and counters[1] > 0 and counters[0] - counters[1] in (0, 1)
        check("a VolumeGroupSnapshot of two PVCs written in lockstep restores to two PVCs whose "
              "counters are of one instant (and the writer ran on through the cut)",
              ok and still == "Running", "restored counters %s; writer %s" % (out, still))
        self.k("delete", "volumegroupsnapshot", "grp", "--wait=true", "--timeout=180s")

    # 8
    def step_postgres(self):
        # e2e-pg (tests/e2e-k8s/images/build.sh): initdb if needed, then the server in the
        # foreground, unix socket only, fsync on.
        script = "exec e2e-pg serve /data/pg"
        spec = pod_spec("pgdata", script, image=POSTGRES)
        del spec["volumes"]
        c = spec["containers"][0]
        c["volumeMounts"] = [{"name": "pgdata", "mountPath": "/data"}]
        c["readinessProbe"] = {"exec": {"command": ["pg_isready", "-h", "/var/run/postgresql"]},
                               "periodSeconds": 2}
        # OnRootMismatch: with the default (Always) the kubelet makes every file group-writable
        # at each mount, and postgres refuses a data directory that is not 0700/0750.
        spec["securityContext"] = {"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                                   "fsGroupChangePolicy": "OnRootMismatch"}
        spec["terminationGracePeriodSeconds"] = 30
        self.cl.apply({"apiVersion": "apps/v1", "kind": "StatefulSet",
                       "metadata": {"name": "pg", "namespace": "default"},
                       "spec": {"serviceName": "pg", "replicas": 1,
                                "selector": {"matchLabels": {"app": "pg"}},
                                "template": {"metadata": {"labels": {"app": "pg"}}, "spec": spec},
                                "volumeClaimTemplates": [pvc("pgdata", "rbdcsi-ext4")]}})
        wait_for("pod pg-0", lambda: self.k("get", "pod", "pg-0", check=False).returncode == 0,
                 timeout=60)
        self.k("wait", "--for=condition=Ready", "pod/pg-0", "--timeout=300s", timeout=320)
        psql = ["e2e-pg", "sql"]
        self.exec("pg-0", *psql, "CREATE TABLE t (i int PRIMARY KEY, v text)")
        for b in range(10):  # ten committed transactions of 100 rows each
            self.exec("pg-0", *psql, "INSERT INTO t SELECT g, md5(g::text) FROM "
                      "generate_series(%d, %d) g" % (b * 100 + 1, b * 100 + 100))
        q = "SELECT count(*) || ' ' || md5(string_agg(v, ',' ORDER BY i)) FROM t"
        before = self.exec("pg-0", *psql, q).strip()
        uid = self.cl.get("-n", "default", "pod", "pg-0")["metadata"]["uid"]
        self.k("delete", "pod", "pg-0", "--wait=true", "--timeout=120s")
        wait_for("pg-0 recreated", lambda: self.cl.get("-n", "default", "pod", "pg-0")
                 ["metadata"]["uid"] != uid, timeout=120, interval=1)
        self.k("wait", "--for=condition=Ready", "pod/pg-0", "--timeout=300s", timeout=320)
        after = self.exec("pg-0", *psql, q).strip()
        check("a PostgreSQL StatefulSet commits 1000 rows; its pod is deleted and recreated; "
              "every row is there", before == after and before.startswith("1000 "),
              "before '%s' after '%s'" % (before, after))

    # 9
    def step_topology(self):
        """topologyConstrainedPools with two zones: a WaitForFirstConsumer PVC lands in the pool
        of the zone of the node its pod runs on, and its PV gets that zone as nodeAffinity."""
        key, zone = TOPOLOGY.split("=")
        base = self.cl.get("storageclass", "rbdcsi-ext4")
        params = {k: v for k, v in base["parameters"].items() if k != "pool"}
        pool_a = self.cl.ceph["RBDCSI_TEST_POOL"]
        params["topologyConstrainedPools"] = json.dumps([
            {"poolName": self.cl.ceph["RBDCSI_TEST_POOL2"],
             "domainSegments": [{"domainLabel": "zone", "value": "e2e-b"}]},
            {"poolName": pool_a, "domainSegments": [{"domainLabel": "zone", "value": zone}]}])
        self.cl.apply({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                       "metadata": {"name": "rbdcsi-zoned"}, "provisioner": DRIVER,
                       "parameters": params, "reclaimPolicy": "Delete",
                       "volumeBindingMode": "WaitForFirstConsumer"})
        self.cl.apply(pvc("zoned", "rbdcsi-zoned"))
        self.run_pod("zoned-writer", "zoned", "echo zoned > /data/z && sync && cat /data/z")
        pv = self.cl.get("pv", self.bound("zoned"))
        attrs = pv["spec"]["csi"]["volumeAttributes"]
        check("a WaitForFirstConsumer PVC on topologyConstrainedPools lands in the pool of the "
              "pod's zone", attrs.get("pool") == pool_a, attrs)
        terms = pv["spec"].get("nodeAffinity", {}).get("required", {}) \
            .get("nodeSelectorTerms", [])
        exprs = [e for t in terms for e in t.get("matchExpressions", [])]
        check("its PV has the zone as nodeAffinity",
              {"key": key, "operator": "In", "values": [zone]} in exprs, terms)
        check("the PV names its PVC (image metadata in volumeAttributes)",
              attrs.get("pvcName") == "zoned" and attrs.get("pvcNamespace") == "default", attrs)
        meta = self.cl.ceph_cmd("rbd", "image-meta", "get",
                                "%s/%s" % (pool_a, attrs.get("imageName")),
                                "csi.storage.k8s.io/pvc/name").strip()
        check("the image names its PVC (rbd image-meta csi.storage.k8s.io/pvc/name)",
              meta == "zoned", meta)
        self.k("delete", "pod", "zoned-writer", "--wait=true", "--timeout=120s")

    # issue 15: QoS that follows the PVC's VolumeAttributesClass
    def step_qos(self):
        """A PVC created with one VolumeAttributesClass, written at its limit, then moved to
        another class while the pod keeps it mounted (csi-resizer's ControllerModifyVolume):
        the pod's write throughput follows each class within 30 % (measured as bytes over the
        wall time of a dd with conv=fsync, after one second's worth of writes has emptied
        librbd's burst bucket). Here the mapper is rbd-fuse, so librbd enforces the limit in
        the rbd-fuse process that had the image open before the change."""
        mib = 1024 * 1024
        classes = {"rbdcsi-qos-slow": 4 * mib, "rbdcsi-qos-fast": 16 * mib}
        for name, bps in classes.items():
            self.cl.apply({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttributesClass",
                           "metadata": {"name": name}, "driverName": "rbdcsi.io",
                           "parameters": {"maxWriteBps": str(bps)}})
        claim = pvc("qos", "rbdcsi-ext4")
        claim["spec"]["volumeAttributesClassName"] = "rbdcsi-qos-slow"
        self.cl.apply(claim)
        self.bound("qos")
        self.cl.apply(pod("qos", "qos", "sleep 3600", restart="Always"))
        self.k("wait", "--for=condition=Ready", "pod/qos", "--timeout=240s", timeout=260)

        def rate(bps, seconds=6):
            n = max(1, bps // mib)
            self.exec("qos", "dd", "if=/dev/zero", "of=/data/drain", "bs=1M", "count=%d" % n,
                      "conv=fsync")
            t0 = time.monotonic()
            self.exec("qos", "dd", "if=/dev/zero", "of=/data/q", "bs=1M",
                      "count=%d" % (n * seconds), "conv=fsync", timeout=120)
            return n * seconds * mib / (time.monotonic() - t0)

        got = {}
        got["rbdcsi-qos-slow"] = rate(classes["rbdcsi-qos-slow"])
        self.k("patch", "pvc", "qos", "-p",
               json.dumps({"spec": {"volumeAttributesClassName": "rbdcsi-qos-fast"}}))
        wait_for("PVC qos to be modified to rbdcsi-qos-fast", lambda: self.cl.get(
            "-n", "default", "pvc", "qos")["status"].get("currentVolumeAttributesClassName") ==
            "rbdcsi-qos-fast", timeout=180, interval=1)
        got["rbdcsi-qos-fast"] = rate(classes["rbdcsi-qos-fast"])
        # (Other steps' pods still hold their volumes: no node_leftovers() check here.)
        self.k("delete", "pod", "qos", "--wait=true", "--timeout=120s")
        detail = ", ".join("%s: %.2f MiB/s for %.0f MiB/s (%.2f)" % (
            n, got[n] / mib, classes[n] / mib, got[n] / classes[n]) for n in classes)
        log("qos: " + detail)
        check("a pod's write throughput follows its PVC's VolumeAttributesClass, changed while "
              "mounted (within 30 %)",
              all(0.7 <= got[n] / classes[n] <= 1.3 for n in classes), detail)

    def step_teardown(self):
        footprint()
        wide = listeners_not_loopback()
        check("every TCP port our processes listen on is on 127.0.0.1", not wide, wide)
        self.k("delete", "statefulset", "pg", "--ignore-not-found", "--wait=true",
               "--timeout=120s")
        self.k("delete", "pod", "--all", "--wait=true", "--timeout=180s")
        self.k("delete", "volumegroupsnapshot", "--all", "--ignore-not-found", "--wait=true",
               "--timeout=180s", check=False)
        self.k("delete", "volumesnapshot", "--all", "--wait=true", "--timeout=180s")
        self.k("delete", "pvc", "--all", "--wait=true", "--timeout=180s")
        wait_for("every PV deleted", lambda: not self.cl.get("pv")["items"], timeout=240,
                 interval=1)
        wait_for("every VolumeSnapshotContent deleted",
                 lambda: not self.cl.get("volumesnapshotcontent")["items"], timeout=240,
                 interval=1)
        pool = self.cl.ceph["RBDCSI_TEST_POOL"]
        images = self.cl.ceph_cmd("rbd", "-p", pool, "ls").split()
        trash = self.cl.ceph_cmd("rbd", "-p", pool, "trash", "ls", "--all").split()
        journal = {}
        for o in self.cl.ceph_cmd("rados", "-p", pool, "ls").split():
            if o.startswith("rbdcsi."):
                journal[o] = self.cl.ceph_cmd("rados", "-p", pool, "listomapkeys", o).split()
        entries = {o: keys for o, keys in journal.items() if keys}
        check("everything deleted: the pool holds no image, nothing in trash, no journal entry",
              not images and not trash and not entries,
              "images %s, trash %s, journal %s" % (images, trash, entries))
        key = self.cl.ceph["RBDCSI_TEST_KEY"].encode()
        hits = [os.path.join(LOGS, f) for f in os.listdir(LOGS)
                if key in open(os.path.join(LOGS, f), "rb").read()]
        for d in os.listdir("/proc"):
            for what in ("cmdline", "environ"):
                try:
                    if d.isdigit() and key in open("/proc/%s/%s" % (d, what), "rb").read():
                        hits.append("/proc/%s/%s" % (d, what))
                except OSError:
                    pass
        check("the cephx key is in no component log (%d), no argv and no environment" %
              len(os.listdir(LOGS)), not hits, ", ".join(hits))


def footprint():
    """Prints the RSS of every process we started (the sidecars' figures for deploy/)."""
    rows = []
    for f in sorted(os.listdir(PIDS)):
        try:
            pid = int(open(os.path.join(PIDS, f)).read().split()[0])
            with open("/proc/%d/status" % pid) as st:
                kb = [int(line.split()[1]) for line in st if line.startswith("VmRSS:")][0]
        except (OSError, ValueError, IndexError):
            continue
        rows.append("%s %.1f" % (f[:-4], kb / 1024))
    log("RSS MiB after the scenario: " + ", ".join(rows))


def our_pids():
    pids = set()
    for f in os.listdir(PIDS):
        try:
            pids.add(int(open(os.path.join(PIDS, f)).read().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def listeners_not_loopback():
    """Listening TCP sockets of the processes we started that are not bound to loopback."""
    ours = our_pids()
    wide = []
    for line in run(["ss", "-Hltnp"]).stdout.splitlines():
        cols = line.split()
        if len(cols) < 6:
            continue
        local = cols[3]
        pids = {int(p) for p in re.findall(r"pid=(\d+)", cols[5])}
        if pids & ours and not (local.startswith("127.") or local.startswith("[::1]")):
            wide.append("%s %s" % (local, cols[5]))
    return wide


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    print("%s  %s%s" % ("PASS" if ok else "FAIL", name, (": " + str(detail)) if detail else ""),
          flush=True)
    if not ok:
        raise Failed(name)


def step(fn, name):
    t = time.time()
    try:
        fn()
    except Failed as e:
        if not RESULTS or RESULTS[-1][0] != str(e):
            RESULTS.append((name, False))
            print("FAIL  %s: %s" % (name, e), flush=True)
    except Exception:  # noqa: BLE001 - a bug in a step fails that step, the run goes on
        RESULTS.append((name, False))
        print("FAIL  %s: %s" % (name, traceback.format_exc()), flush=True)
    log("step '%s' took %.1f s" % (name, time.time() - t))


class MemoryPeak(threading.Thread):
    """Samples the machine's used memory (MemTotal - MemAvailable) every second."""

    def __init__(self):
        super().__init__(daemon=True)
        self.base = self.used()
        self.peak = self.base

    @staticmethod
    def used():
        m = {}
        with open("/proc/meminfo") as f:
            for line in f:
                k, v = line.split(":")
                m[k] = int(v.split()[0])
        return (m["MemTotal"] - m["MemAvailable"]) * 1024

    def run(self):
        while True:
            self.peak = max(self.peak, self.used())
            time.sleep(1)


def dump_logs():
    if not os.path.isdir(LOGS):
        return
    for f in sorted(os.listdir(LOGS)):
        path = os.path.join(LOGS, f)
        lines = open(path, errors="replace").read().splitlines()
        print("\n----- %s (last %d of %d lines) -----" % (f, min(len(lines), 150), len(lines)))
        print("\n".join(lines[-150:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin")
    ap.add_argument("--images")
    ap.add_argument("--rbdcsi")
    ap.add_argument("--kustomize")
    ap.add_argument("--rbdcsi-image", help="the archive of make image (build/image/)")
    ap.add_argument("--clean", action="store_true", help="only clean up, then exit")
    ap.add_argument("--keep", action="store_true", help="leave everything running")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("e2e: must run as root (kubelet, mounts, loop devices)")
    clean()
    if args.clean:
        return 0
    if os.path.exists(KUBELET_DIR) and os.listdir(KUBELET_DIR):
        sys.exit("e2e: %s exists and is not ours (%s does not name it): is a kubelet "
                 "running here? Not touching it." % (KUBELET_DIR, KUBELET_MARK))
    os.makedirs(E2E, mode=0o700, exist_ok=True)
    os.makedirs(RUN, mode=0o700, exist_ok=True)
    mem = MemoryPeak()
    mem.start()
    cl = Cluster(args)
    sc = Scenario(cl)
    phases = [("ceph", cl.ceph_up), ("certs", certs), ("control plane", cl.control_plane),
              ("node (containerd, images, kubelet)", cl.node), ("csi", cl.csi)]
    ok = True
    for name, fn in phases:
        t = time.time()
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            print("FAIL  bring-up: %s: %s" % (name, e), flush=True)
            if not isinstance(e, Failed):
                traceback.print_exc()
            RESULTS.append(("bring-up " + name, False))
            ok = False
            break
        log("phase %s: %.1f s" % (name, time.time() - t))
    if ok:
        for fn, name in ((sc.step_filesystem, "filesystem volume"),
                         (sc.step_block, "block volume"), (sc.step_expand, "expansion"),
                         (sc.step_snapshot, "snapshot, restore, clone"),
                         (sc.step_group_snapshot, "volume group snapshot"),
                         (sc.step_postgres, "postgres statefulset"),
                         (sc.step_topology, "topology"),
                         (sc.step_qos, "QoS by VolumeAttributesClass"),
                         (sc.step_teardown, "teardown")):
            step(fn, name)
    log("memory: %d MiB in use before, peak %d MiB during the run (+%d MiB)" % (
        mem.base >> 20, mem.peak >> 20, (mem.peak - mem.base) >> 20))
    passed = sum(1 for _, r in RESULTS if r)
    failed = sum(1 for _, r in RESULTS if not r)
    if failed:
        dump_logs()
    if args.keep:
        log("--keep: leaving everything running; clean with: %s --clean" % sys.argv[0])
    else:
        t = time.time()
        clean()
        log("teardown: %.1f s" % (time.time() - t))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
