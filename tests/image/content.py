#!/usr/bin/python3
"""Checks an rbdcsi image archive (make image) against deploy/Containerfile and the lists.

    content.py ARCHIVE CONTAINERFILE BUILD_LIST RUNTIME_LIST SLIM_CFG BUILD_SH

Prints one PASS/FAIL line per check; exits 1 if any failed. Checks:
  containerfile-lists   the Containerfile installs exactly the two list files, with the same
                        sed expression that deploy/image/build.sh uses, no package named
                        anywhere else, on debian:trixie-slim like build.sh's SUITE=trixie, and
                        with the same dpkg path filters (slim.dpkg.cfg)
  config                the archive's User, Entrypoint and Env are the Containerfile's
  packages-listed       every package of the runtime list is installed in the image
  packages-nothing-else every installed package is minbase (Essential, Priority required, apt:
                        what debian:*-slim holds) or a dependency of a listed package
  libraries             every library /usr/bin/rbdcsi links (ELF NEEDED) is shipped by a listed
                        package, and the ones it dlopens too
  layout                index.json and manifest.json name the same blobs, digests match
  slim                  no file in the layers is one that slim.dpkg.cfg excludes (the filters
                        also hold for the essential packages, as in debian:*-slim)
"""
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

DLOPEN = ["librados.so.2", "librbd.so.1", "libmicrohttpd.so.12", "libcurl.so.4"]
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print("%s  %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail and not ok else ""))


def read_list(path):
    out = []
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def parse_status(text):
    """dpkg status -> {package: fields} for installed packages."""
    pkgs = {}
    for para in text.split("\n\n"):
        fields, key = {}, None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, v = line.partition(":")
                fields[key] = v.strip()
        if fields.get("Package") and fields.get("Status", "").endswith(" installed"):
            pkgs[fields["Package"]] = fields
    return pkgs


def deps(fields):
    """Alternatives groups of Depends + Pre-Depends, as lists of names (arch/version dropped)."""
    out = []
    for f in ("Pre-Depends", "Depends"):
        for group in filter(None, (g.strip() for g in fields.get(f, "").split(","))):
            out.append([re.sub(r"[:\s(].*", "", a.strip()) for a in group.split("|")])
    return out


def main():
    archive, containerfile, build_list, runtime_list, slim_cfg, build_sh = sys.argv[1:7]
    cf = open(containerfile, encoding="utf-8").read()
    bsh = open(build_sh, encoding="utf-8").read()

    # --- the Containerfile against the lists and build.sh ---------------------------------------
    sed = "sed -e 's/#.*//' -e '/^[[:space:]]*$/d'"
    problems = []
    for lst in ("build-packages.list", "runtime-packages.list"):
        if "%s /tmp/image/%s" % (sed, lst) not in cf:
            problems.append("does not read %s with `%s`" % (lst, sed))
    if sed not in bsh:
        problems.append("deploy/image/build.sh does not read the lists with `%s`" % sed)
    installs = re.findall(r"apt-get install[^\n]*", cf)
    if len(installs) != 2 or any(i.strip() != "apt-get install -y --no-install-recommends \\"
                                 for i in installs):
        problems.append("apt-get install lines other than the two list installs: %r" % installs)
    if not re.search(r"^ARG DEBIAN_RELEASE=trixie$", cf, re.M) or \
            len(re.findall(r"^FROM debian:\$\{DEBIAN_RELEASE\}-slim", cf, re.M)) != 2:
        problems.append("not FROM debian:trixie-slim (both stages)")
    if not re.search(r"^SUITE=trixie$", bsh, re.M):
        problems.append("build.sh does not bootstrap trixie")
    if "COPY deploy/image/slim.dpkg.cfg /etc/dpkg/dpkg.cfg.d/99mmdebstrap" not in cf:
        problems.append("the Containerfile does not install slim.dpkg.cfg where mmdebstrap does")
    if "RUN sh /tmp/image/check-root.sh" not in cf:
        problems.append("the Containerfile does not run check-root.sh")
    check("containerfile-lists", not problems, "; ".join(problems))

    with tarfile.open(archive) as t:
        index = json.load(t.extractfile("index.json"))
        dmanifest = json.load(t.extractfile("manifest.json"))
        mdesc = index["manifests"][0]
        manifest_blob = t.extractfile("blobs/sha256/" + mdesc["digest"][7:]).read()
        manifest = json.loads(manifest_blob)
        config_blob = t.extractfile("blobs/sha256/" + manifest["config"]["digest"][7:]).read()
        config = json.loads(config_blob)
        layout = []
        if hashlib.sha256(manifest_blob).hexdigest() != mdesc["digest"][7:]:
            layout.append("manifest digest")
        if hashlib.sha256(config_blob).hexdigest() != manifest["config"]["digest"][7:]:
            layout.append("config digest")
        if dmanifest[0]["Config"] != "blobs/sha256/" + manifest["config"]["digest"][7:]:
            layout.append("manifest.json Config")
        if dmanifest[0]["Layers"] != ["blobs/sha256/" + l["digest"][7:]
                                      for l in manifest["layers"]]:
            layout.append("manifest.json Layers")
        if dmanifest[0]["RepoTags"] != [mdesc["annotations"]["io.containerd.image.name"]]:
            layout.append("RepoTags vs io.containerd.image.name")
        layers = []
        for i, l in enumerate(manifest["layers"]):
            data = t.extractfile("blobs/sha256/" + l["digest"][7:]).read()
            if hashlib.sha256(data).hexdigest() != l["digest"][7:] or \
                    "sha256:" + hashlib.sha256(data).hexdigest() != config["rootfs"]["diff_ids"][i]:
                layout.append("layer %d digest" % i)
            layers.append(tarfile.open(fileobj=io.BytesIO(data)))
        check("layout", not layout, ", ".join(layout))

    # --- config against the Containerfile -------------------------------------------------------
    c = config["config"]
    want_user = re.search(r"^USER (\S+)$", cf, re.M)
    want_ep = re.search(r"^ENTRYPOINT (\[.*\])$", cf, re.M)
    want_env = re.findall(r"^ENV (\S+)$", cf, re.M)
    problems = []
    if not want_user or c.get("User") != want_user.group(1):
        problems.append("User %r" % c.get("User"))
    if not want_ep or c.get("Entrypoint") != json.loads(want_ep.group(1)):
        problems.append("Entrypoint %r" % c.get("Entrypoint"))
    if sorted(c.get("Env", [])) != sorted(want_env):
        problems.append("Env %r vs %r" % (c.get("Env"), want_env))
    if c.get("User", "0").split(":")[0] in ("", "0", "root"):
        problems.append("runs as root")
    check("config", not problems, "; ".join(problems))

    # --- slim: the dpkg path filters hold for every file, as in debian:*-slim -------------------
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "slim", os.path.join(os.path.dirname(os.path.abspath(slim_cfg)), "slim.py"))
    slim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(slim)
    rs = slim.rules(slim_cfg)
    present = [m.name for lt in layers for m in lt.getmembers() if not m.isdir()]
    bad = [p for p in present if slim.excluded("/" + p.lstrip("./"), rs)]
    check("slim", present and not bad, "%d files the dpkg filters exclude, e.g. %s" % (
        len(bad), " ".join(bad[:5])))

    # --- packages -------------------------------------------------------------------------------
    def member(name):
        for lt in reversed(layers):  # the upper layer wins
            try:
                return lt.extractfile("./" + name) or lt.extractfile(name)
            except KeyError:
                continue
        return None

    status = parse_status(member("var/lib/dpkg/status").read().decode())
    listed = read_list(runtime_list)
    missing = [p for p in listed if p not in status]
    check("packages-listed", not missing, "not installed: " + " ".join(missing))

    provides = {}
    for name, f in status.items():
        for p in filter(None, (x.strip() for x in f.get("Provides", "").split(","))):
            provides.setdefault(re.sub(r"[:\s(].*", "", p), []).append(name)
    roots = [p for p, f in status.items()
             if f.get("Essential") == "yes" or f.get("Priority") == "required" or p == "apt"]
    seen, todo = set(), roots + listed
    while todo:
        p = todo.pop()
        if p in seen or p not in status:
            continue
        seen.add(p)
        for group in deps(status[p]):
            for alt in group:
                for cand in [alt] + provides.get(alt, []):
                    if cand in status:
                        todo.append(cand)
    extra = sorted(set(status) - seen)
    check("packages-nothing-else", not extra,
          "installed but neither minbase nor needed by the list: " + " ".join(extra))

    # --- libraries ------------------------------------------------------------------------------
    owner = {}
    for name in status:
        for suffix in ("", ":amd64"):
            f = member("var/lib/dpkg/info/%s%s.list" % (name, suffix))
            if f:
                for path in f.read().decode().splitlines():
                    owner.setdefault(path.rsplit("/", 1)[-1], set()).add(name)
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(member("usr/bin/rbdcsi").read())
        tmp.flush()
        dyn = subprocess.run(["readelf", "-d", tmp.name], check=True, capture_output=True,
                             text=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    problems = []
    for lib in needed + DLOPEN:
        owners = owner.get(lib, set())
        if not owners & set(listed) and lib not in ("libc.so.6", "ld-linux-x86-64.so.2",
                                                      "libm.so.6"):
            problems.append("%s (from %s)" % (lib, " ".join(sorted(owners)) or "nothing"))
    check("libraries", bool(needed) and not problems,
          "not shipped by a listed package: " + ", ".join(problems))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
