#!/usr/bin/env python3
"""redis-operator's own rebalance (3 -> 4 masters) and drain (4 -> 3) rates, for comparing
builds back to back on the same machine (no redis-cli run):

  bench/migration_rates.py [--keys N] [--replicas R] [--rounds K] BINARY [BINARY ...]

Rates are keys moved over the migration window read from `--record`, as in
bench/against_redis_cli.py. The scale-out time is the whole `local up --until-ready` after
`local scale --masters 4`: with replicas, the new master's replica is created and synced
before its first slot moves, and that wait is in the scale-out time, not in the window.
Binaries are measured in turn, --rounds times, so load on the machine hits them alike.
Servers bind 127.0.0.1, ports 13300-13307 (bus +10000), and are
stopped and purged after each binary.
"""
import argparse, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import against_redis_cli as bench  # noqa: E402

BASE = 13300

def measure(binary, keys, replicas):
    root = tempfile.mkdtemp(prefix="rop-rates-")
    env = dict(os.environ, RUST_LOG="warn")
    manifest, trace = os.path.join(root, "c.yaml"), os.path.join(root, "t.jsonl")
    def op(*args):
        return subprocess.run([binary, *args], capture_output=True, text=True, env=env, cwd=root)
    def up():
        if os.path.exists(trace):
            os.remove(trace)
        out = op("local", "up", "-f", manifest, "--dir", "d", "--listen", "off", "--until-ready",
                 "--ready-timeout", "900", "--record", trace)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
    try:
        bench.ours_manifest(manifest, 3, replicas, BASE)
        up()
        bench.load([BASE, BASE + 1, BASE + 2], keys)
        op("local", "scale", "--name", "bench", "--dir", "d", "--masters", "4")
        t0 = time.monotonic()
        up()
        scale_out = time.monotonic() - t0
        moved = int(bench.cli(BASE + 3, "dbsize"))
        rebalance = moved / bench.migration_window(trace)
        op("local", "scale", "--name", "bench", "--dir", "d", "--masters", "3")
        up()
        drain = moved / bench.migration_window(trace)
        print(f"{binary}: {moved:,} keys moved each way; scale-out {scale_out:.1f} s, "
              f"rebalance {rebalance:,.0f} keys/s, drain {drain:,.0f} keys/s", flush=True)
    finally:
        op("local", "down", "--name", "bench", "--dir", "d", "--purge")
        shutil.rmtree(root, ignore_errors=True)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--replicas", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    for _ in range(a.rounds):
        for b in a.binaries:
            measure(os.path.abspath(b), a.keys, a.replicas)

if __name__ == "__main__":
    main()
