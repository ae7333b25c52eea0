#!/usr/bin/env python3
"""redis-operator's own rebalance (3 -> 4 masters) and drain (4 -> 3) rates, for comparing
builds back to back on the same machine (no redis-cli run):

  bench/migration_rates.py [--keys N] BINARY [BINARY ...]

Rates are keys moved over the migration window read from `--record`, as in
bench/against_redis_cli.py. Servers bind 127.0.0.1, ports 13300-13303 (bus +10000), and are
stopped and purged after each binary.
"""
import argparse, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import against_redis_cli as bench  # noqa: E402

BASE = 13300

def measure(binary, keys):
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
        bench.ours_manifest(manifest, 3, 0, BASE)
        up()
        bench.load([BASE, BASE + 1, BASE + 2], keys)
        op("local", "scale", "--name", "bench", "--dir", "d", "--masters", "4")
        up()
        moved = int(bench.cli(BASE + 3, "dbsize"))
        rebalance = moved / bench.migration_window(trace)
        op("local", "scale", "--name", "bench", "--dir", "d", "--masters", "3")
        up()
        drain = moved / bench.migration_window(trace)
        print(f"{binary}: {moved:,} keys moved each way; rebalance {rebalance:,.0f} keys/s, "
              f"drain {drain:,.0f} keys/s", flush=True)
    finally:
        op("local", "down", "--name", "bench", "--dir", "d", "--purge")
        shutil.rmtree(root, ignore_errors=True)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    for b in a.binaries:
        measure(os.path.abspath(b), a.keys)

if __name__ == "__main__":
    main()
