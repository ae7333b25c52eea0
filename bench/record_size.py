#!/usr/bin/env python3
"""What `local up --record` writes for a settled cluster, against every pass written (the
recording before trace thinning), same cluster, same run.

For each size (default 25x1 and 100x1: 200 redis-server processes) it starts the cluster with
`redis-operator local up --record TRACE` (HTTP API on 127.0.0.1:22990 for its metrics), waits
until it is Ready and idle (passes without effects), then for `--seconds` counts the trace's
growth in bytes and records, and the passes the operator ran (`redis_operator_reconcile_
passes_total`). Then the same on the same nodes with `--record-every-pass` (the peer: every
pass written, as before), and prints both per minute and their ratio.

Usage: python3 bench/record_size.py [--sizes 25,100] [--seconds 120]
                                   [--binary target/release/redis-operator]
Ports 22000-22199 (bus 32000-32199) and 22990; every process started is stopped at the end.
"""
import argparse, os, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pass_cost import BASE, LISTEN, metrics, wait  # noqa: E402

NAME = "recordsize"


def measure(binary, masters, seconds, root, every_pass):
    manifest = os.path.join(root, f"{NAME}.yaml")
    with open(manifest, "w") as f:
        f.write(f"apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {NAME}\n"
                f"spec:\n  masters: {masters}\n  replicas: 1\n  basePort: {BASE}\n  maxMemory: 16mb\n")
    trace = os.path.join(root, f"trace-{'every' if every_pass else 'thinned'}.jsonl")
    log = open(os.path.join(root, f"up-{'every' if every_pass else 'thinned'}.log"), "w")
    up = subprocess.Popen([binary, "local", "up", "-f", manifest, "--dir", os.path.join(root, "state"),
                           "--listen", LISTEN, "--record", trace]
                          + (["--record-every-pass"] if every_pass else []),
                          stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        wait(lambda: metrics()["ready"] >= 1, "Ready", 900)
        def idle():
            a = metrics(); time.sleep(6); b = metrics()
            return b["passes"] - a["passes"] >= 2 and b["effects"] == a["effects"] and b["ready"] >= 1
        wait(idle, "idle passes", 600)
        def lines():
            with open(trace, "rb") as f:
                return sum(1 for _ in f)
        m0, s0, l0 = metrics(), os.path.getsize(trace), lines()
        time.sleep(seconds)
        m1, s1, l1 = metrics(), os.path.getsize(trace), lines()
        per_min = 60.0 / seconds
        return {
            "bytes_min": (s1 - s0) * per_min,
            "records_min": (l1 - l0) * per_min,
            "passes_min": (m1["passes"] - m0["passes"]) * per_min,
            "effects": m1["effects"] - m0["effects"],
        }
    finally:
        # SIGTERM stops the nodes, keeping their identities: the next `up` brings them back.
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=300)
        except subprocess.TimeoutExpired:
            up.kill(); up.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="25,100")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--binary", default="target/release/redis-operator")
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.1f} at start, {os.cpu_count()} cores, {a.seconds} s settled per side")
    print("| masters x 1 | passes / min | thinned: records / min | thinned: MB / min | "
          "every pass: records / min | every pass: MB / min | every pass / thinned |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for masters in [int(s) for s in a.sizes.split(",")]:
        root = tempfile.mkdtemp(prefix=f"record-size-{masters}-")
        try:
            thinned = measure(binary, masters, a.seconds, root, False)
            every = measure(binary, masters, a.seconds, root, True)
        except Exception:
            print(f"(logs kept in {root})", file=sys.stderr)
            raise
        finally:
            subprocess.run([binary, "local", "down", "--name", NAME, "--dir",
                            os.path.join(root, "state"), "--purge"], capture_output=True, cwd=root)
        ratio = every["bytes_min"] / thinned["bytes_min"] if thinned["bytes_min"] else float("inf")
        print(f"| {masters} | {thinned['passes_min']:.0f} / {every['passes_min']:.0f} | "
              f"{thinned['records_min']:.1f} | {thinned['bytes_min'] / 1e6:.2f} | "
              f"{every['records_min']:.1f} | {every['bytes_min'] / 1e6:.1f} | {ratio:.0f}x |", flush=True)
        shutil.rmtree(root, ignore_errors=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
