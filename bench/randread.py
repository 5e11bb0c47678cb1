#!/usr/bin/env python3
"""Random 4 KiB pread() benchmark over a fixed list of files, used by bench/fs_bench.sh.

For every file in --list (NUL-separated paths relative to --root, in list order) it opens the
file, issues --reads pread(4096) calls at 4 KiB-aligned offsets drawn from a generator seeded
with --seed and the file's list index, and closes it. The offsets therefore depend only on the
list, the seed and each file's size, so every mount of the same tree receives exactly the same
requests in the same order.

The timed pass includes open() and close() (a cold open costs a lookup on a cold mount); with
--repeat it is made several times back to back (for warm caches, where one pass is too short to
time well). It prints one line "READS SECONDS READS_PER_S" to stdout. With --digest it then makes a second, untimed pass
over the same offsets and prints "digest HEX" as well, so the caller can check that all mounts
returned the same bytes.
"""
import argparse
import hashlib
import os
import random
import sys
import time

BS = 4096


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="mountpoint (or any directory holding the tree)")
    ap.add_argument("--list", required=True,
                    help="file of NUL-separated records 'SIZE<TAB>RELPATH' (sizes from the source tree)")
    ap.add_argument("--reads", type=int, default=50, help="pread(4096) calls per file (default 50)")
    ap.add_argument("--seed", type=int, default=1, help="seed for the offsets (default 1)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="make the timed pass this many times back to back and report their total (default 1)")
    ap.add_argument("--digest", action="store_true", help="also print a SHA-256 of all bytes read (untimed)")
    args = ap.parse_args()

    with open(args.list, "rb") as f:
        records = [r for r in f.read().split(b"\0") if r]
    work = []
    for i, rec in enumerate(records):
        size_s, rel = rec.split(b"\t", 1)
        size = int(size_s)
        if size < BS:
            sys.exit(f"randread: {rel!r} is smaller than {BS} bytes")
        rng = random.Random(args.seed * 1_000_003 + i)
        blocks = size // BS  # offsets keep the whole 4 KiB read inside the file
        offsets = [rng.randrange(blocks) * BS for _ in range(args.reads)]
        work.append((os.path.join(os.fsencode(args.root), rel), offsets))

    pread = os.pread
    short = 0
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        for path, offsets in work:
            fd = os.open(path, os.O_RDONLY)
            try:
                for off in offsets:
                    if len(pread(fd, BS, off)) != BS:
                        short += 1
            finally:
                os.close(fd)
    elapsed = time.perf_counter() - t0
    if short:
        sys.exit(f"randread: {short} short reads under {args.root}")
    n = args.repeat * sum(len(o) for _, o in work)
    print(f"{n} {elapsed:.6f} {n / elapsed:.1f}")

    if args.digest:
        h = hashlib.sha256()
        for path, offsets in work:
            fd = os.open(path, os.O_RDONLY)
            try:
                for off in offsets:
                    h.update(pread(fd, BS, off))
            finally:
                os.close(fd)
        print(f"digest {h.hexdigest()}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
