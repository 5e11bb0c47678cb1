#!/usr/bin/env python3
"""Fails when a file of src/ (or the test kit) includes a header of a layer it may not use, or
uses a name that belongs to another layer's knowledge (OWNED_NAMES: the node-id encoding).

The allowed dependency graph of docs/architecture.md, as one table: each layer (a folder below
src/, or tests/kit) lists the layers whose headers it may include. A layer may always include its
own headers. An entry "erofs/format.h" allows one header of a layer, "erofs" all of them.
Every folder below src/ that holds code must have a row: a new folder gets one when it is made.

Only `#include "..."` lines naming "folder/..." are checked (system and third-party headers use
<...>; a quoted include without a folder is a file of the same folder, or generated next to it).

Usage: scripts/check_layering.py [--root DIR]     exit 0: clean, 1: violations (listed)
       scripts/check_layering.py --self-test      proves the check fails on a forbidden include
Run by ctest as `layering_check` (label unit), so CI fails on a violation.
"""
import argparse
import os
import re
import sys
import tempfile

# layer: the layers it may include (besides itself)
ALLOWED = {
    "common":          set(),  # includes nothing of ours
    "fuse/abi":        set(),
    "fuse/server":     {"common", "fuse/abi"},  # never fuse/transport
    "fuse/transport":  {"common", "fuse/abi"},  # never fuse/server
    "erofs":           {"common"},  # never fuse/*
    # storage reads Ferry's chunk table (an erofs-layer format) to serve compressed blobs; erofs
    # never includes storage (devices reach the reader as ByteSources).
    "storage":         {"common", "erofs"},  # never fuse/*
    "imagefs":         {"common", "fuse/abi", "fuse/server", "erofs", "storage", "remote"},
    "ipc":             {"common"},
    "http":            {"common", "ipc"},  # the server listens through ipc's UnixListener
    "daemon":          {"common", "fuse/abi", "fuse/server", "fuse/transport", "erofs", "storage",
                        "imagefs", "ipc", "http", "remote"},
    # The manager: never fuse/*, imagefs, erofs, storage, daemon or the builder.
    "manager":         {"common", "ipc", "http"},
    "tools/ferryctl":  {"common", "http", "ipc"},
    # Reserved for the folders issue 15 and the next ones add:
    "oci":             {"common", "http"},
    # Lazy fetch from a registry: the fetcher ferryd links (storage's RemoteBlobFetcher, no curl)
    # and the module it dlopen()s (over oci's RegistryClient).
    "remote":          {"common", "storage", "erofs", "oci"},
    "builder":         {"common", "erofs/format.h", "erofs/chunk_table.h", "storage"},
    # ferry-image: the builder's and oci's command line (shares ferryctl's CLI11 wrapper).
    "tools/ferry-image": {"common", "builder", "erofs", "storage", "oci", "tools/ferryctl/cli.h"},
    "snapshotter":     {"common", "ipc", "http", "oci", "manager"},  # never imagefs/fuse/erofs/builder
    # The test kit (tests/kit) serves tests and benchmarks of every layer; its core builds on common
    # only, its FUSE side (ferry_testkit_fuse: filesystem decorators, a capturing reply writer) on
    # the filesystem interface, and the header-only memory_blob.h and counting_reader.h on storage's
    # codecs and stored-chunk reader and erofs's chunk table (their users link them).
    "testkit":         {"common", "fuse/abi", "fuse/server", "erofs/chunk_table.h", "storage/chunk_codec.h",
                        "storage/stored_chunk_reader.h"},
}

# Knowledge that belongs to one layer, by the names only its code should use: (pattern, the layers
# that may use it, what it is).
OWNED_NAMES = [
    (re.compile(r"\bkNidBits\b|\bkNidMask\b"), {"imagefs"},
     "the node-id encoding (decode with imagefs/node_id.h's functions)"),
]

# Known exceptions: (file relative to the root, included header or owned-name pattern) pairs the
# check lets pass, each with the reason and who removes it. Keep this empty when you can.
KNOWN_EXCEPTIONS = set()

# Where each layer lives, relative to the root. Longer prefixes win (fuse/server before fuse).
LAYER_DIRS = {layer: "src/" + layer for layer in ALLOWED if layer != "testkit"}
LAYER_DIRS["testkit"] = "tests/kit"

SOURCE_EXT = (".h", ".hpp", ".cc", ".cpp", ".inc")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of_path(rel):
    """The layer a file (path relative to the root) belongs to, or None outside every layer."""
    best = None
    for layer, d in LAYER_DIRS.items():
        if rel.startswith(d + "/") and (best is None or len(d) > len(LAYER_DIRS[best])):
            best = layer
    return best


def layer_of_include(inc):
    """The layer an include "a/b/c.h" names (longest matching src/ folder), or None."""
    best = None
    for layer in ALLOWED:
        if layer == "testkit":
            prefix = "kit/"
        else:
            prefix = layer + "/"
        if inc.startswith(prefix) and (best is None or len(layer) > len(best)):
            best = layer
    return best


def allowed(src_layer, inc):
    dst = layer_of_include(inc)
    if dst is None or dst == src_layer:
        return True
    rules = ALLOWED[src_layer]
    return dst in rules or inc in rules


def check(root):
    problems = []
    src = os.path.join(root, "src")
    # Every code folder below src/ needs a row.
    for dirpath, _dirs, files in os.walk(src):
        if not any(f.endswith(SOURCE_EXT) for f in files):
            continue
        rel_dir = os.path.relpath(dirpath, root)
        if layer_of_path(rel_dir + "/x") is None:
            problems.append(f"{rel_dir}: a folder with code but no row in scripts/check_layering.py's "
                            "ALLOWED table: add one (which layers may it use?)")
    for base in ("src", "tests/kit"):
        for dirpath, _dirs, files in os.walk(os.path.join(root, base)):
            for name in sorted(files):
                if not name.endswith(SOURCE_EXT):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                layer = layer_of_path(rel)
                if layer is None:
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        for pattern, owners, what in OWNED_NAMES:
                            if (layer not in owners and pattern.search(line)
                                    and (rel, pattern.pattern) not in KNOWN_EXCEPTIONS):
                                problems.append(f"{rel}:{lineno}: {layer} uses {what}, which belongs to "
                                                f"{', '.join(sorted(owners))}")
                        m = INCLUDE_RE.match(line)
                        if not m or "/" not in m.group(1):
                            continue
                        inc = m.group(1)
                        if allowed(layer, inc) or (rel, inc) in KNOWN_EXCEPTIONS:
                            continue
                        rules = ", ".join(sorted(ALLOWED[layer])) or "nothing of ours"
                        problems.append(f"{rel}:{lineno}: {layer} may not include \"{inc}\" "
                                        f"({layer} may use: {rules})")
    return problems


def self_test():
    """A tree with one forbidden edge of each kind must fail; the same tree without them passes."""
    with tempfile.TemporaryDirectory(prefix="ferry-layering-") as root:
        def write(rel, text):
            p = os.path.join(root, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
        write("src/common/a.h", '#include "common/b.h"\n#include <vector>\n')
        write("src/erofs/r.cc", '#include "common/a.h"\n#include "erofs/x.h"\n#include "format.h"\n')
        write("src/builder/w.cc", '#include "erofs/format.h"\n#include "storage/codec.h"\n')
        write("src/manager/m.cc", '#include "ipc/supervisor.h"\n#include "http/http_client.h"\n')
        if check(root):
            print("self-test: a clean tree was reported:\n  " + "\n  ".join(check(root)))
            return 1
        bad = {
            "src/common/bad.h": '#include "fuse/server/filesystem.h"\n',
            "src/fuse/server/bad.cc": '#include "fuse/transport/fuse_session.h"\n',
            "src/manager/bad.cc": '#include "imagefs/image_fs.h"\n',
            "src/builder/bad.cc": '#include "erofs/erofs_image.h"\n',
            "src/snapshotter/bad.cc": '#include "builder/writer.h"\n',
            "src/newfolder/x.cc": '#include "common/result.h"\n',
            "src/daemon/decode.cc": 'auto slot = id >> imagefs::kNidBits;\n',
        }
        for rel, text in bad.items():
            write(rel, text)
        found = check(root)
        # A folder without a row is reported by folder, every other violation by file.
        keys = [os.path.dirname(rel) + ":" if "newfolder" in rel else rel + ":" for rel in bad]
        missing = [k for k in keys if not any(p.startswith(k) for p in found)]
        if missing or len(found) != len(bad):
            print("self-test: expected one violation for each of " + ", ".join(bad) + "; got:\n  " +
                  "\n  ".join(found))
            return 1
    print("self-test: ok (clean tree passes, each forbidden include or owned name fails)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    problems = check(os.path.abspath(args.root))
    for p in problems:
        print(p)
    if problems:
        print(f"check_layering: {len(problems)} violation(s); the allowed edges are the ALLOWED "
              "table of scripts/check_layering.py (docs/architecture.md, Layers)")
        return 1
    print("check_layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
