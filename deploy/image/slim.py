#!/usr/bin/python3
"""Applies the dpkg path filters of slim.dpkg.cfg to files already in a root: what Debian's
-slim images (debuerreotype's slimify) do after bootstrapping, because the essential packages
are unpacked before dpkg reads the filters. dpkg's matching: fnmatch(3) without FNM_PATHNAME
(`*` also matches `/`); the last matching path-exclude/path-include line wins.

    slim.py slim.dpkg.cfg ROOT          deletes the excluded files and symlinks, prints a count
    slim.py --check slim.dpkg.cfg LIST  exits 1 if a path in LIST (one per line) is excluded
"""
import fnmatch
import os
import sys


def rules(cfg):
    out = []
    for line in open(cfg, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line.startswith(("path-exclude", "path-include")):
            kind, _, pat = line.partition(" ")
            out.append((kind == "path-exclude", pat.strip().lstrip("=").strip()))
    return out


def excluded(path, rs):
    verdict = False
    for exclude, pat in rs:
        if fnmatch.fnmatchcase(path, pat):
            verdict = exclude
    return verdict


def main():
    if sys.argv[1] == "--check":
        rs = rules(sys.argv[2])
        bad = [p.rstrip("\n") for p in open(sys.argv[3], encoding="utf-8")
               if excluded("/" + p.rstrip("\n").lstrip("./"), rs)]
        for p in bad[:20]:
            print("excluded but present: " + p)
        return 1 if bad else 0
    rs = rules(sys.argv[1])
    root = sys.argv[2].rstrip("/")
    prefixes = sorted({pat.split("*", 1)[0].rsplit("/", 1)[0] for ex, pat in rs if ex})
    n = 0
    for prefix in prefixes:
        for d, dirs, files in os.walk(root + prefix):
            for f in files:  # files and symlinks (os.walk lists symlinks to dirs in dirs)
                full = os.path.join(d, f)
                if excluded(full[len(root):], rs):
                    os.unlink(full)
                    n += 1
            for sub in list(dirs):
                full = os.path.join(d, sub)
                if os.path.islink(full) and excluded(full[len(root):], rs):
                    os.unlink(full)
                    dirs.remove(sub)
                    n += 1
    print(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
