#!/usr/bin/python3
"""Write a container image archive from layer tarballs, with no image tool and no registry.

    oci.py --out FILE --ref NAME:TAG --config CONFIG.json [--label K=V]... LAYER.tar...

CONFIG.json holds the image's "config" object (User, Entrypoint, Env, ...). The layers are
uncompressed tarballs, lowest first. FILE is one tar that is at the same time
  - an OCI image layout (oci-layout, index.json, blobs/sha256/...): `podman load`,
    `ctr images import`, `skopeo copy oci-archive:FILE ...`; the index names the image with
    the annotations io.containerd.image.name (containerd) and org.opencontainers.image.ref.name
    (podman/skopeo, full reference);
  - a docker archive (manifest.json with RepoTags, pointing at the same blobs): `docker load`,
    `skopeo copy docker-archive:FILE ...`.
This is the layout `docker save` writes since Docker 25. Blobs are stored once. The archive is
reproducible: entries sorted, mtime 0, owner 0:0. Prints the manifest digest on stdout.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest(), os.path.getsize(path)


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 0
    tar.addfile(info)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--ref", required=True, help="full reference, e.g. localhost/rbdcsi:v1")
    ap.add_argument("--config", required=True)
    ap.add_argument("--created", default="1970-01-01T00:00:00Z")
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("layers", nargs="+")
    a = ap.parse_args()

    name, sep, tag = a.ref.rpartition(":")
    if not sep or "/" in tag or not name:
        sys.exit("oci.py: --ref must be NAME:TAG")
    with open(a.config, encoding="utf-8") as f:
        config = json.load(f)
    labels = dict(config.get("Labels") or {})
    for kv in a.label:
        k, _, v = kv.partition("=")
        labels[k] = v
    if labels:
        config["Labels"] = labels

    layers = [(p,) + sha256_file(p) for p in a.layers]
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": a.created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for _, d, _ in layers]},
        "history": [{"created": a.created, "created_by": "deploy/image/build.sh"}
                    for _ in layers],
    }
    config_blob = dumps(image_config)
    config_digest = hashlib.sha256(config_blob).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": "sha256:" + config_digest,
                   "size": len(config_blob)},
        "layers": [{"mediaType": LAYER, "digest": "sha256:" + d, "size": s}
                   for _, d, s in layers],
    }
    if labels:
        manifest["annotations"] = {k: v for k, v in labels.items()
                                   if k.startswith("org.opencontainers.image.")}
    manifest_blob = dumps(manifest)
    manifest_digest = hashlib.sha256(manifest_blob).hexdigest()
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{
            "mediaType": MANIFEST,
            "digest": "sha256:" + manifest_digest,
            "size": len(manifest_blob),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": a.ref,
                "org.opencontainers.image.ref.name": a.ref,
            },
        }],
    }
    docker_manifest = [{
        "Config": "blobs/sha256/" + config_digest,
        "RepoTags": [a.ref],
        "Layers": ["blobs/sha256/" + d for _, d, _ in layers],
    }]

    tmp = a.out + ".partial"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, "oci-layout", dumps({"imageLayoutVersion": "1.0.0"}))
        add_bytes(tar, "index.json", dumps(index))
        add_bytes(tar, "manifest.json", dumps(docker_manifest))
        add_dir(tar, "blobs")
        add_dir(tar, "blobs/sha256")
        blobs = {config_digest: config_blob, manifest_digest: manifest_blob}
        files = {d: p for p, d, _ in layers}
        for digest in sorted(set(blobs) | set(files)):
            if digest in blobs:
                add_bytes(tar, "blobs/sha256/" + digest, blobs[digest])
                continue
            info = tarfile.TarInfo("blobs/sha256/" + digest)
            info.size = os.path.getsize(files[digest])
            info.mode = 0o644
            info.mtime = 0
            with open(files[digest], "rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, a.out)
    print("sha256:" + manifest_digest)


if __name__ == "__main__":
    os.umask(0o022)
    main()
