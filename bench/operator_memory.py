#!/usr/bin/env python3
"""Operator memory and start-up with many clusters in one process (issue 13, point 5).

For each count (default 1, 20, 100) it runs `redis-operator local host --clusters N` (N local
clusters of 3 masters x 0 replicas, reconciled by one process as the Kubernetes controller
holds every cluster it watches), and prints:
  - start-up to the first pass: from spawning the process to the end of every cluster's first
    pass (which starts that cluster's nodes);
  - time until every cluster is Ready;
  - the operator's RSS once idle (the median of three readings 5 s apart, after every cluster
    has been Ready for 10 s), and per cluster above one.

Usage: python3 bench/operator_memory.py [--counts 1,20,100] [--binary target/release/redis-operator]
Ports 22300-22599 (bus 32300-32599); every node is stopped and deleted at the end.
"""
import argparse, os, shutil, signal, subprocess, tempfile, time

BASE = 22300

def run(binary, clusters):
    root = tempfile.mkdtemp(prefix=f"operator-memory-{clusters}-")
    t0 = time.time()
    p = subprocess.Popen([binary, "local", "host", "--clusters", str(clusters), "--masters", "3",
                          "--replicas", "0", "--base-port", str(BASE), "--dir", root],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = ready = None
    rss = []
    try:
        deadline = time.time() + 900
        for line in p.stdout:
            now = time.time()
            if line.startswith("first pass"):
                first = now - t0
            elif line.startswith("every cluster ready"):
                ready = now - t0
            elif line.startswith("rss:") and ready is not None and now - t0 > ready + 10:
                rss.append(int(line.split()[1]))
                if len(rss) == 3:
                    break
            if now > deadline:
                raise RuntimeError("timed out")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()
        shutil.rmtree(root, ignore_errors=True)
    rss.sort()
    return first, ready, rss[1] / 1024

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1,20,100")
    ap.add_argument("--binary", default="target/release/redis-operator")
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.1f} at start, {os.cpu_count()} cores")
    print("| clusters (3 x 0 each) | redis-server processes | start-up to every first pass | every cluster Ready | operator RSS idle | RSS per cluster above one |")
    print("|---|---|---|---|---|---|", flush=True)
    one = None
    for n in [int(c) for c in a.counts.split(",")]:
        first, ready, rss = run(binary, n)
        if one is None and n == 1:
            one = rss
        per = f"{(rss - one) / (n - 1) * 1024:.0f} kB" if one is not None and n > 1 else "-"
        print(f"| {n} | {3 * n} | {first * 1000:.0f} ms | {ready:.1f} s | {rss:.1f} MB | {per} |", flush=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")

if __name__ == "__main__":
    main()
