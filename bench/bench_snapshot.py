"""Snapshot costs on a 1 GB input: hashing throughput against `sha256sum`, and the re-run overhead of `log_input`
on an unchanged 1 GB input with and without the state table (compared with a small input). One run, then cleanup."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from unittest.mock import patch

from mlkit.fingerprint import sha256_file
from mlkit.objects import cached_sha256
from mlkit.snapshots import declare_input

SIZE = 1 << 30


def timed(action, repeat=1) -> float:
    "Best wall time of `repeat` calls of `action`."
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-snapshot-"))
    try:
        big, small = work / "big.bin", work / "small.csv"
        with open(big, "wb") as handle:
            for _ in range(SIZE >> 24):
                handle.write(os.urandom(1 << 24))
        small.write_text("x\n1\n")
        old = time.time() - 3600
        for path in (big, small):
            os.utime(path, (old, old))
        ours = timed(lambda: sha256_file(big), 3)
        theirs = timed(lambda: subprocess.run(["sha256sum", str(big)], check=True, capture_output=True), 3)
        print(f"hash 1 GiB: mlkit {ours:.3f} s ({SIZE / ours / 1e9:.2f} GB/s), sha256sum {theirs:.3f} s, "
              f"ratio sha256sum/mlkit {theirs / ours:.2f}")
        env = {"MLKIT_RUN_DIR": str(work / "run"), "MLKIT_ARCHIVE": str(work / "runs")}
        with patch.dict(os.environ, env):
            first = timed(lambda: declare_input(big))
            with_state = timed(lambda: declare_input(big), 5)
            small_state = timed(lambda: declare_input(small), 5)
        without_state = timed(lambda: cached_sha256(big), 3)
        print(f"first log_input of 1 GiB (hash + copy into the store): {first:.3f} s")
        print(f"re-run log_input, unchanged 1 GiB, state table: {with_state * 1000:.1f} ms "
              f"(small file: {small_state * 1000:.1f} ms, overhead {(with_state - small_state) * 1000:.1f} ms)")
        print(f"re-run without the state table (hash again): {without_state:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
