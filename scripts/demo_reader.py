#!/usr/bin/env python3
"""The demo's container: reads files under a mount and verifies every byte, until SIGTERM.

Each of --threads threads picks a random file of the source tree, opens it under --mount with
O_DIRECT (so every read reaches the daemon instead of the page cache; files whose size is not
a multiple of 4 KiB are read through the page cache with posix_fadvise(DONTNEED) first), reads
a random 4 KiB-aligned range and compares it with the same range of the source file. Every
error and every wrong byte is counted; nothing is retried.

It also records every gap longer than --gap-ms between two successful reads (of any thread):
that is what a container sees of a daemon switch. On SIGTERM it writes one JSON object to
--out: {"ops", "errors", "mismatches", "failures": [...], "gaps": [[start_unix_s, ms], ...]}.
"""
import argparse
import json
import mmap
import os
import random
import signal
import sys
import threading
import time

BS = 4096


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = 0
        self.errors = 0
        self.mismatches = 0
        self.failures = []
        self.gaps = []
        self.last_ok = time.time()

    def ok(self, gap_s):
        now = time.time()
        with self.lock:
            self.ops += 1
            gap = now - self.last_ok
            if gap > gap_s:
                self.gaps.append([round(self.last_ok, 6), round(gap * 1000, 3)])
            self.last_ok = now

    def fail(self, kind, what):
        with self.lock:
            if kind == "mismatch":
                self.mismatches += 1
            else:
                self.errors += 1
            if len(self.failures) < 20:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {what}")


def reader(args, files, stats, stop, seed):
    rng = random.Random(seed)
    buf = mmap.mmap(-1, args.max_len)  # page-aligned, as O_DIRECT needs
    gap_s = args.gap_ms / 1000.0
    while not stop.is_set():
        rel, size = files[rng.randrange(len(files))]
        blocks = max(1, size // BS)
        off = rng.randrange(blocks) * BS
        length = min(args.max_len, max(BS, (size - off + BS - 1) // BS * BS))
        direct = size % BS == 0
        try:
            fd = os.open(os.path.join(args.mount, rel), os.O_RDONLY | (os.O_DIRECT if direct else 0))
            try:
                if not direct:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                view = memoryview(buf)[:length]
                n = os.preadv(fd, [view], off)
                got = bytes(view[:n])
            finally:
                os.close(fd)
        except OSError as e:
            stats.fail("error", f"{rel} @{off}: {e.strerror}")
            continue
        with open(os.path.join(args.source, rel), "rb") as src:
            src.seek(off)
            want = src.read(min(length, max(0, size - off)))
        if got != want:
            stats.fail("mismatch", f"{rel} @{off}: {len(got)} bytes differ from the source")
            continue
        stats.ok(gap_s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mount", required=True, help="where the image is mounted")
    ap.add_argument("--source", required=True, help="the tree the image was built from")
    ap.add_argument("--out", required=True, help="JSON result file written on SIGTERM")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=64 * 1024)
    ap.add_argument("--gap-ms", type=float, default=1.0, help="record gaps longer than this")
    args = ap.parse_args()

    files = []
    for dirpath, _, names in os.walk(args.source):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) > 0:
                files.append((os.path.relpath(path, args.source), os.path.getsize(path)))
    if not files:
        sys.exit("demo_reader: no files to read under " + args.source)

    stats = Stats()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=reader, args=(args, files, stats, stop, i + 1), daemon=True)
               for i in range(args.threads)]
    for t in threads:
        t.start()
    while not stop.is_set():
        stop.wait(0.1)
    for t in threads:
        t.join(timeout=10)
    with stats.lock:
        result = {"ops": stats.ops, "errors": stats.errors, "mismatches": stats.mismatches,
                  "failures": stats.failures, "gaps": stats.gaps}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
