#!/usr/bin/python3
"""Checks on the rendered deploy manifests, run by tests/deploy/check.sh.

Reads the kustomize rendering, the Helm rendering with default values and the Helm rendering
with tests/deploy/values-full.yaml, and prints one line per check:

    PASS  <what>
    FAIL  <what>
          <indented detail lines>

check.sh counts the PASS/FAIL lines. This script exits 0 even when a check fails; it exits 1
only if it cannot run at all.

The YAML is parsed with PyYAML (Debian's python3-yaml), never grepped.
"""

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "Job", "Pod")

# StorageClass parameters the driver accepts (anything else is rejected by CreateVolume).
# Keys with the csi.storage.k8s.io/ prefix are the provisioner's and are always allowed.
DRIVER_SC_PARAMETERS = {
    "clusterID", "pool", "dataPool", "radosNamespace", "imageFeatures", "imageFormat",
    "volumeNamePrefix", "journalPool", "fsType", "mkfsOptions", "mounter", "mapOptions",
    "unmapOptions",
}
REQUIRED_SC_PARAMETERS = ("clusterID", "pool")
SECRET_PHASES = ("provisioner", "controller-expand", "controller-publish", "node-stage")
MOUNTERS = ("krbd", "rbd-nbd", "fuse", "auto")
FSTYPES = ("ext4", "xfs")

# Dummy values for downward-API env vars when expanding $(VAR) in args.
FIELDREF_DUMMIES = {
    "spec.nodeName": "dummy-node-1",
    "metadata.name": "dummy-pod",
    "metadata.namespace": "rbdcsi",
    "metadata.uid": "00000000-0000-0000-0000-000000000000",
    "spec.serviceAccountName": "dummy-sa",
    "status.podIP": "127.0.0.1",
    "status.hostIP": "127.0.0.1",
}

# Sidecar image base name -> controller capability it needs (present iff advertised).
SIDECAR_CAPABILITY = {
    "csi-provisioner": "CREATE_DELETE_VOLUME",
    "csi-attacher": "PUBLISH_UNPUBLISH_VOLUME",
    "csi-resizer": "EXPAND_VOLUME",
    "csi-snapshotter": "CREATE_DELETE_SNAPSHOT",
}


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def result(self, ok, what, details=()):
        print("%s  %s" % ("PASS" if ok else "FAIL", what))
        for d in details:
            print("      " + d)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        sys.stdout.flush()
        return ok


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def key(obj):
    md = obj.get("metadata") or {}
    return (obj.get("kind"), md.get("namespace") or "", md.get("name"))


def keystr(k):
    kind, ns, name = k
    return "%s %s/%s" % (kind, ns, name) if ns else "%s %s" % (kind, name)


def image_base(image):
    """'registry.k8s.io/sig-storage/csi-attacher:v4.12.0' -> 'csi-attacher'."""
    if not image:
        return ""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def pod_spec(obj):
    if obj.get("kind") == "Pod":
        return obj.get("spec") or {}
    if obj.get("kind") == "Job":
        return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


def containers(obj):
    spec = pod_spec(obj)
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def expand(s, env):
    """Kubernetes' $(VAR) expansion of command/args: $$ escapes, unknown refs stay as they are."""
    out = []
    i = 0
    while i < len(s):
        if s[i] == "$" and i + 1 < len(s):
            nxt = s[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = s.find(")", i + 2)
                if end != -1:
                    name = s[i + 2:end]
                    if name in env:
                        out.append(env[name])
                    else:
                        out.append(s[i:end + 1])
                    i = end + 1
                    continue
        out.append(s[i])
        i += 1
    return "".join(out)


def container_env(c):
    """The container's env as a dict, with downward-API and secret refs given dummy values."""
    env = {}
    problems = []
    for e in c.get("env") or []:
        name = e.get("name")
        if "value" in e:
            env[name] = expand(str(e.get("value") or ""), env)
            continue
        vf = e.get("valueFrom") or {}
        if "fieldRef" in vf:
            path = vf["fieldRef"].get("fieldPath", "")
            env[name] = FIELDREF_DUMMIES.get(path, "dummy-" + re.sub(r"[^a-z0-9]+", "-",
                                                                       path.lower()))
        elif "resourceFieldRef" in vf:
            env[name] = "1"
        elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
            env[name] = "dummy-" + name.lower()
        else:
            problems.append("env %s has no value" % name)
    return env, problems


class Rendering:
    def __init__(self, label, path):
        self.label = label
        self.path = path
        self.docs = load_docs(path)
        self.by_key = {}
        for d in self.docs:
            self.by_key[key(d)] = d

    def of_kind(self, kind):
        return [d for d in self.docs if d.get("kind") == kind]

    def find(self, kind, name, namespace=None):
        for d in self.of_kind(kind):
            md = d.get("metadata") or {}
            if md.get("name") == name and (namespace is None or
                                           (md.get("namespace") or "") == namespace):
                return d
        return None

    def workloads(self):
        return [d for d in self.docs if d.get("kind") in WORKLOAD_KINDS]

    def rbdcsi_containers(self):
        """(workload, container) for every container running the rbdcsi image."""
        out = []
        for w in self.workloads():
            for c in containers(w):
                if image_base(c.get("image")) == "rbdcsi":
                    out.append((w, c))
        return out


def materialize_configmaps(r, workload, container, tmp):
    """Write the ConfigMaps the container mounts into tmp; return (path rewrites, problems)."""
    spec = pod_spec(workload)
    ns = (workload.get("metadata") or {}).get("namespace") or ""
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    rewrites = []
    problems = []
    for m in container.get("volumeMounts") or []:
        v = volumes.get(m.get("name"))
        if v is None:
            problems.append("volumeMount %s has no volume" % m.get("name"))
            continue
        if "configMap" not in v:
            continue
        cm_name = v["configMap"].get("name")
        cm = r.find("ConfigMap", cm_name, ns)
        if cm is None:
            problems.append("ConfigMap %s (volume %s) is not in the rendering" %
                            (cm_name, v.get("name")))
            continue
        d = os.path.join(tmp, "%s-%s" % (image_base(container.get("image")), v.get("name")))
        os.makedirs(d, exist_ok=True)
        for k, val in (cm.get("data") or {}).items():
            with open(os.path.join(d, k), "w", encoding="utf-8") as f:
                f.write(val)
        rewrites.append((m.get("mountPath").rstrip("/") + "/", d + "/"))
    return rewrites, problems


def dry_run(rbdcsi, args, timeout=30):
    try:
        p = subprocess.run([rbdcsi] + args + ["--dry-run"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           check=False)
    except subprocess.TimeoutExpired:
        return None, None, "timed out after %d s" % timeout
    except OSError as e:
        return None, None, "cannot run %s: %s" % (rbdcsi, e.strerror)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace").strip()
    if p.returncode != 0:
        return p.returncode, None, err or out.strip()
    try:
        obj = json.loads(out)
    except ValueError as e:
        return p.returncode, None, "stdout is not one JSON object: %s" % e
    if not isinstance(obj, dict):
        return p.returncode, None, "stdout is JSON but not an object"
    return p.returncode, obj, err


def container_args(c):
    cmd = list(c.get("command") or [])
    args = [str(a) for a in c.get("args") or []]
    if cmd:
        # The image's ENTRYPOINT is /usr/bin/rbdcsi; a command must name it to be checkable.
        if os.path.basename(str(cmd[0])) != "rbdcsi":
            return None
        return [str(a) for a in cmd[1:]] + args
    return args


def check_dry_runs(rep, r, rbdcsi, tmp):
    """(b): every rbdcsi container's args pass `rbdcsi ... --dry-run`. Returns mode -> JSON."""
    results = {}
    found = r.rbdcsi_containers()
    if not rep.result(bool(found), "[%s] has rbdcsi containers (%d)" % (r.label, len(found))):
        return results
    for w, c in found:
        what = "[%s] rbdcsi --dry-run accepts %s container %s" % (r.label, keystr(key(w)),
                                                                  c.get("name"))
        args = container_args(c)
        if args is None:
            rep.result(False, what, ["command does not run rbdcsi: %r" % c.get("command")])
            continue
        env, problems = container_env(c)
        expanded = [expand(a, env) for a in args]
        for a in expanded:
            for ref in re.findall(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", a.replace("$$", "")):
                problems.append("%s is not defined in the container's env (arg %r)" % (ref, a))
        rewrites, cm_problems = materialize_configmaps(r, w, c, tmp)
        problems += cm_problems
        final = []
        for a in expanded:
            for old, new in rewrites:
                a = a.replace("=" + old, "=" + new)
            final.append(a)
        if problems:
            rep.result(False, what, problems)
            continue
        rc, obj, err = dry_run(rbdcsi, final)
        if obj is None:
            rep.result(False, what, ["exit %s: %s" % (rc, err), "args: %s" % " ".join(final)])
            continue
        mode = next((a.split("=", 1)[1] for a in final if a.startswith("--mode=")), None)
        details = []
        if obj.get("mode") != mode:
            details.append("--dry-run says mode %r, args say %r" % (obj.get("mode"), mode))
        for field in ("plugin_capabilities", "controller_capabilities", "node_capabilities"):
            if not isinstance(obj.get(field), list):
                details.append("--dry-run output has no %s array" % field)
        if rep.result(not details, what + " (mode=%s)" % mode, details):
            results.setdefault(mode, (w, c, obj, final))
    return results


def check_capabilities(rep, r, runs):
    """(c): CSIDriver.attachRequired and the controller sidecars match the capabilities."""
    ctrl = runs.get("controller") or runs.get("all")
    if ctrl is None:
        rep.result(False, "[%s] capability checks: no controller container passed --dry-run" %
                   r.label)
        return
    workload, _, obj, args = ctrl
    caps = set(obj.get("controller_capabilities") or [])
    plugin_caps = set(obj.get("plugin_capabilities") or [])
    drivername = next((a.split("=", 1)[1] for a in args if a.startswith("--drivername=")),
                      obj.get("drivername"))

    drivers = r.of_kind("CSIDriver")
    if len(drivers) != 1:
        rep.result(False, "[%s] exactly one CSIDriver (found %d)" % (r.label, len(drivers)))
    else:
        d = drivers[0]
        name = (d.get("metadata") or {}).get("name")
        attach = (d.get("spec") or {}).get("attachRequired")
        want = "PUBLISH_UNPUBLISH_VOLUME" in caps
        rep.result(attach is want,
                   "[%s] CSIDriver %s attachRequired=%s matches PUBLISH_UNPUBLISH_VOLUME %s" %
                   (r.label, name, json.dumps(attach), "advertised" if want else "not advertised"),
                   [] if attach is want else ["controller_capabilities: %s" % sorted(caps)])
        rep.result(name == drivername,
                   "[%s] CSIDriver name %s == controller --drivername %s" %
                   (r.label, name, drivername))

    rep.result("CONTROLLER_SERVICE" in plugin_caps,
               "[%s] a controller is deployed and the plugin advertises CONTROLLER_SERVICE" %
               r.label, [] if "CONTROLLER_SERVICE" in plugin_caps else
               ["plugin_capabilities: %s" % sorted(plugin_caps)])

    present = {image_base(c.get("image")) for c in containers(workload)}
    for sidecar, cap in sorted(SIDECAR_CAPABILITY.items()):
        has, want = sidecar in present, cap in caps
        rep.result(has == want, "[%s] %s %s and %s %s" %
                   (r.label, sidecar, "present" if has else "absent", cap,
                    "advertised" if want else "not advertised"))

    expandable = [(sc.get("metadata") or {}).get("name") for sc in r.of_kind("StorageClass")
                  if sc.get("allowVolumeExpansion")]
    if expandable:
        ok = "EXPAND_VOLUME" in caps
        rep.result(ok, "[%s] StorageClasses allowing expansion (%s) have EXPAND_VOLUME" %
                   (r.label, ", ".join(expandable)))
    if r.of_kind("VolumeSnapshotClass"):
        ok = "CREATE_DELETE_SNAPSHOT" in caps
        rep.result(ok, "[%s] a VolumeSnapshotClass exists and CREATE_DELETE_SNAPSHOT is "
                   "advertised" % r.label)

    node = runs.get("node") or runs.get("all")
    if node is None:
        rep.result(False, "[%s] a node plugin container passed --dry-run" % r.label)
        return
    nworkload, _, nobj, nargs = node
    ncaps = set(nobj.get("node_capabilities") or [])
    npresent = {image_base(c.get("image")) for c in containers(nworkload)}
    rep.result("csi-node-driver-registrar" in npresent,
               "[%s] node pod has csi-node-driver-registrar" % r.label)
    reg = next((c for c in containers(nworkload)
                if image_base(c.get("image")) == "csi-node-driver-registrar"), None)
    if reg is not None:
        path = next((a.split("=", 1)[1] for a in reg.get("args") or []
                     if str(a).startswith("--kubelet-registration-path=")), "")
        want = "/plugins/%s/csi.sock" % drivername
        rep.result(path.endswith(want), "[%s] registrar --kubelet-registration-path=%s ends "
                   "with %s" % (r.label, path, want))
    ndriver = next((a.split("=", 1)[1] for a in nargs if a.startswith("--drivername=")), None)
    rep.result(ndriver == drivername, "[%s] node --drivername %s == controller's %s" %
               (r.label, ndriver, drivername))
    rep.result("STAGE_UNSTAGE_VOLUME" in ncaps,
               "[%s] node advertises STAGE_UNSTAGE_VOLUME" % r.label)

    for sc in r.of_kind("StorageClass"):
        prov = sc.get("provisioner")
        rep.result(prov == drivername, "[%s] StorageClass %s provisioner %s == %s" %
                   (r.label, (sc.get("metadata") or {}).get("name"), prov, drivername))
    for vsc in r.of_kind("VolumeSnapshotClass"):
        rep.result(vsc.get("driver") == drivername,
                   "[%s] VolumeSnapshotClass %s driver %s == %s" %
                   (r.label, (vsc.get("metadata") or {}).get("name"), vsc.get("driver"),
                    drivername))


def check_config_and_classes(rep, r):
    """The cluster ConfigMap is valid JSON and every class refers to it and to a Secret."""
    cms = [cm for cm in r.of_kind("ConfigMap") if "config.json" in (cm.get("data") or {})]
    clusters = set()
    if not rep.result(len(cms) == 1, "[%s] one ConfigMap with config.json (found %d)" %
                      (r.label, len(cms))):
        return
    details = []
    try:
        cfg = json.loads(cms[0]["data"]["config.json"])
    except ValueError as e:
        cfg = None
        details.append("not JSON: %s" % e)
    if cfg is not None:
        if not isinstance(cfg, list) or not cfg:
            details.append("must be a non-empty JSON list")
        else:
            for i, c in enumerate(cfg):
                if not isinstance(c, dict):
                    details.append("entry %d is not an object" % i)
                    continue
                extra = set(c) - {"clusterID", "monitors", "radosNamespace"}
                if extra:
                    details.append("entry %d: unknown keys %s" % (i, sorted(extra)))
                if not isinstance(c.get("clusterID"), str) or not c.get("clusterID"):
                    details.append("entry %d: clusterID missing" % i)
                elif len(c["clusterID"]) > 36:
                    details.append("entry %d: clusterID longer than 36 bytes" % i)
                else:
                    clusters.add(c["clusterID"])
                mons = c.get("monitors")
                if not isinstance(mons, list) or not mons or \
                        not all(isinstance(m, str) and m for m in mons):
                    details.append("entry %d: monitors must be a non-empty list of strings" % i)
    rep.result(not details, "[%s] config.json is a list of {clusterID, monitors[, "
               "radosNamespace]} (%d clusters)" % (r.label, len(clusters)), details)

    for sc in r.of_kind("StorageClass"):
        name = (sc.get("metadata") or {}).get("name")
        params = sc.get("parameters") or {}
        details = []
        for k in params:
            if not k.startswith("csi.storage.k8s.io/") and k not in DRIVER_SC_PARAMETERS:
                details.append("parameter %s is not one the driver accepts" % k)
        for k in REQUIRED_SC_PARAMETERS:
            if not params.get(k):
                details.append("parameter %s is required" % k)
        if params.get("clusterID") and params["clusterID"] not in clusters:
            details.append("clusterID %s is not in config.json" % params["clusterID"])
        for k in ("fsType", "csi.storage.k8s.io/fstype"):
            if k in params and params[k] not in FSTYPES:
                details.append("%s %s is not one of %s" % (k, params[k], FSTYPES))
        if "mounter" in params and params["mounter"] not in MOUNTERS:
            details.append("mounter %s is not one of %s" % (params["mounter"], MOUNTERS))
        for phase in SECRET_PHASES:
            for suffix in ("name", "namespace"):
                k = "csi.storage.k8s.io/%s-secret-%s" % (phase, suffix)
                if not params.get(k):
                    details.append("%s is missing" % k)
        for k, v in params.items():
            if not isinstance(v, str):
                details.append("parameter %s is not a string (%r)" % (k, v))
        rep.result(not details, "[%s] StorageClass %s parameters are all accepted and complete"
                   % (r.label, name), details)

    for vsc in r.of_kind("VolumeSnapshotClass"):
        params = vsc.get("parameters") or {}
        ok = all(params.get("csi.storage.k8s.io/snapshotter-secret-%s" % s)
                 for s in ("name", "namespace"))
        rep.result(ok, "[%s] VolumeSnapshotClass %s references the snapshotter secret" %
                   (r.label, (vsc.get("metadata") or {}).get("name")))

    secrets = r.of_kind("Secret")
    rep.result(not secrets, "[%s] renders no Secret (no placeholder cephx key gets deployed)" %
               r.label, [keystr(key(s)) for s in secrets])


def normalise(obj):
    """An object without what legitimately differs between kustomize and Helm renderings."""
    o = copy.deepcopy(obj)
    md = o.get("metadata") or {}
    md.pop("labels", None)
    if not md.get("annotations"):
        md.pop("annotations", None)
    if o.get("kind") == "ConfigMap":
        for k, v in list((o.get("data") or {}).items()):
            if k.endswith(".json"):
                try:
                    o["data"][k] = json.loads(v)
                except ValueError:
                    pass
    return o


def diff_paths(a, b, path=""):
    if type(a) is not type(b):
        return ["%s: %r != %r" % (path or "/", a, b)]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append("%s/%s: only in helm" % (path, k))
            elif k not in b:
                out.append("%s/%s: only in kustomize" % (path, k))
            else:
                out += diff_paths(a[k], b[k], "%s/%s" % (path, k))
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return ["%s: %d items in kustomize, %d in helm" % (path, len(a), len(b))]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff_paths(x, y, "%s[%d]" % (path, i))
        return out
    return [] if a == b else ["%s: %r != %r" % (path, a, b)]


def check_same_objects(rep, k, h):
    """(d) same kinds/names; (e) same content apart from labels."""
    ignore = {"Namespace"}  # Helm does not create its release namespace (--create-namespace).
    kk = {x for x in k.by_key if x[0] not in ignore}
    hk = {x for x in h.by_key if x[0] not in ignore}
    details = ["only in kustomize: " + keystr(x) for x in sorted(kk - hk, key=str)]
    details += ["only in helm: " + keystr(x) for x in sorted(hk - kk, key=str)]
    rep.result(kk == hk, "kustomize and helm render the same kinds/names (%d objects; "
               "Namespace excluded: Helm uses --create-namespace)" % len(kk), details)
    details = []
    for x in sorted(kk & hk, key=str):
        d = diff_paths(normalise(k.by_key[x]), normalise(h.by_key[x]))
        details += ["%s %s" % (keystr(x), line) for line in d[:10]]
    rep.result(not details, "kustomize and helm objects are identical apart from labels "
               "(images, args, RBAC rules, mounts, classes)", details[:40])


def check_yaml_files(rep, files):
    bad = []
    for f in files:
        try:
            load_docs(f)
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:
            bad.append("%s: %s" % (f, str(e).splitlines()[0] if str(e) else type(e).__name__))
    rep.result(not bad, "every static YAML file parses with python3-yaml (%d files)" %
               len(files), bad)


def check_rejects_bad_flag(rep, rbdcsi):
    try:
        p = subprocess.run([rbdcsi, "--mode=controller", "--no-such-flag-rbdcsi-check",
                            "--dry-run"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, check=False)
        rc = p.returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        rc = "error: %s" % e
    rep.result(rc == 2, "%s --dry-run rejects an unknown flag with exit 2 (got %s), so the "
               "dry-run checks can fail" % (os.path.basename(rbdcsi), rc))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rbdcsi", help="the rbdcsi binary; without it (b) and (c) FAIL")
    ap.add_argument("--kustomize", required=True)
    ap.add_argument("--helm", required=True)
    ap.add_argument("--helm-full", help="Helm rendering with every optional value set")
    ap.add_argument("--examples", help="kustomize rendering of deploy/kubernetes/examples")
    ap.add_argument("yaml_files", nargs="*")
    a = ap.parse_args()

    rep = Report()
    if a.yaml_files:
        check_yaml_files(rep, a.yaml_files)

    renderings = []
    for label, path in (("kustomize", a.kustomize), ("helm", a.helm),
                        ("helm-full", a.helm_full)):
        if not path:
            continue
        try:
            r = Rendering(label, path)
        except (yaml.YAMLError, OSError) as e:
            rep.result(False, "[%s] rendering parses as YAML" % label, [str(e)])
            continue
        rep.result(bool(r.docs), "[%s] rendering parses as YAML (%d objects)" %
                   (label, len(r.docs)))
        renderings.append(r)

    if a.examples:
        try:
            ex = load_docs(a.examples)
            kinds = sorted({d.get("kind") for d in ex})
            rep.result(bool(ex), "[examples] rendering parses (%d objects: %s)" %
                       (len(ex), ", ".join(kinds)))
        except (yaml.YAMLError, OSError) as e:
            rep.result(False, "[examples] rendering parses", [str(e)])

    rbdcsi_ok = bool(a.rbdcsi) and os.access(a.rbdcsi, os.X_OK)
    if not rep.result(rbdcsi_ok, "rbdcsi binary is executable: %s" % (a.rbdcsi or "(unset)")):
        pass
    elif renderings:
        check_rejects_bad_flag(rep, a.rbdcsi)

    with tempfile.TemporaryDirectory(prefix="rbdcsi-deploy-check.") as tmp:
        for r in renderings:
            check_config_and_classes(rep, r)
            if rbdcsi_ok:
                runs = check_dry_runs(rep, r, a.rbdcsi, os.path.join(tmp, r.label))
                check_capabilities(rep, r, runs)

    byl = {r.label: r for r in renderings}
    if "kustomize" in byl and "helm" in byl:
        check_same_objects(rep, byl["kustomize"], byl["helm"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
