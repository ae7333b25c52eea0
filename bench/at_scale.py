#!/usr/bin/env python3
"""redis-operator against `redis-cli --cluster` at a size where the quadratic parts show
(issue 13, point 2), in one run, same server binary and configuration on both sides:

  1. create M masters x 1 replica (default 100 x 1: 200 processes) until `cluster_state:ok` on
     every node and `redis-cli --cluster check` is clean; each side starts its own processes
     inside the clock (redis-operator: `local up`; the peer: every server, then `--cluster
     create --cluster-replicas 1`);
  2. load N keys (default 2M), then scale out to M+A masters x 1 (default 110), timed from the
     scale command until every master holds its share of the keys within 2 % and the check is
     clean (redis-operator: `local scale --masters M+A`; the peer, as a person would by hand:
     start 2A servers, `add-node` the A masters, wait until the cluster knows them, `add-node
     --cluster-slave` the A replicas, `rebalance --cluster-use-empty-masters`).

The two sides run one after the other, never at once: 200 processes on 2 cores are the load.
Both run with Redis' default node timeout, 15 s (`--node-timeout-ms`): with the 5 s the other
benchmarks use, 220 processes on 2 cores missed pongs for longer than that, and Redis failed
over healthy new masters in the middle of the scale-out (see docs/benchmarks.md).
Helpers (key loading, the balanced-and-clean test) are `bench/against_redis_cli.py`'s.

Usage: python3 bench/at_scale.py [--masters 100] [--add 10] [--keys 2000000]
                                 [--pipeline N] [--binary target/release/redis-operator]
                                 [--server-binary redis-server] [--cli redis-cli]
                                 [--base-port 17300] [--trace T] [--log L] [--ours-only]
                                 [--node-timeout-ms 15000]
Ports BASE..BASE+2(M+A) for redis-operator and BASE+300.. for the peer (bus ports +10000), all
on 127.0.0.1; every process started is stopped at the end. Bus ports must stay below the
kernel's ephemeral range (32768 and up here): a first try at base 23000 had two bus ports
taken by the operator's own outgoing connections, and those nodes never started.
"""
import argparse, os, shutil, signal, subprocess, sys, tempfile, time

import against_redis_cli as arc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--masters", type=int, default=100)
    ap.add_argument("--add", type=int, default=10)
    ap.add_argument("--keys", type=int, default=2_000_000)
    ap.add_argument("--pipeline", type=int, default=None,
                    help="the peer's --cluster-pipeline (default: redis-cli's own, 10)")
    ap.add_argument("--binary", default="target/release/redis-operator")
    ap.add_argument("--server-binary", "--server", dest="server", default="redis-server")
    ap.add_argument("--cli", default="redis-cli")
    ap.add_argument("--base-port", type=int, default=17300)
    ap.add_argument("--trace", default=None,
                    help="keep redis-operator's `--record` trace of the run here (JSON lines)")
    ap.add_argument("--log", default=None, help="write redis-operator's output (warnings) here")
    ap.add_argument("--node-timeout-ms", type=int, default=15000,
                    help="cluster-node-timeout of both sides (default: Redis' own default)")
    ap.add_argument("--server-loglevel", default=None,
                    help="our nodes' loglevel (verbose logs epoch collisions to each node's redis.log)")
    ap.add_argument("--ours-only", action="store_true",
                    help="skip the peer (to iterate on our side; prints no ratio)")
    a = ap.parse_args()
    if a.masters < 3 or a.add < 1 or a.keys < 1:
        ap.error("--masters must be at least 3, --add and --keys at least 1")
    arc.SERVER, arc.CLI = (os.path.abspath(shutil.which(x) or x) for x in (a.server, a.cli))
    m, total = a.masters, a.masters + a.add
    ours_base, peer_base = a.base_port, a.base_port + 300
    ephemeral = 32768
    if peer_base + 2 * total + 10000 > ephemeral or ours_base + 2 * total > peer_base:
        ap.error(f"ports {ours_base}..{peer_base + 2 * total} do not fit: both sides' bus ports "
                 f"(+10000) must stay below {ephemeral}, and a side holds {2 * total} ports")
    binary = os.path.abspath(a.binary)
    root = tempfile.mkdtemp(prefix="rop-at-scale-")
    ours_dir = os.path.join(root, "ours")
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    servers = arc.Servers(os.path.join(root, "peer"), a.node_timeout_ms)
    up = None

    def op(*args):
        return subprocess.run([binary, *args], capture_output=True, text=True, env=env, cwd=root)

    def ok_and_clean(ports):
        return arc.cluster_ok(ports) and arc.check_clean(ports[0])

    def timed(what, cond, start, timeout=1800):
        arc.wait(cond, what, timeout)
        return time.time() - start

    failed = True
    try:
        version = subprocess.run([arc.SERVER, "--version"], capture_output=True, text=True).stdout.split()
        cli_name = os.path.basename(arc.CLI)
        print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {m} x 1 -> {total} x 1, "
              f"{a.keys:,} keys; server {version[0]} {version[2]}; peer pipeline "
              f"{a.pipeline or 'default (10)'}; node timeout {a.node_timeout_ms} ms; load average {os.getloadavg()[0]:.1f}", flush=True)

        # redis-operator: create, load, scale out.
        manifest = os.path.join(root, "c.yaml")
        arc.ours_manifest(manifest, m, 1, ours_base, a.node_timeout_ms)
        if a.server_loglevel:
            with open(manifest, "a") as f:
                f.write(f"  redisConfig:\n    loglevel: {a.server_loglevel}\n")
        ours_ports = list(range(ours_base, ours_base + 2 * m))
        t = time.time()
        trace = os.path.abspath(a.trace) if a.trace else os.path.join(root, "trace.jsonl")
        log = open(a.log, "w") if a.log else subprocess.DEVNULL
        up = subprocess.Popen([binary, "local", "up", "-f", manifest, "--dir", ours_dir, "--listen", "off",
                               "--server-binary", arc.SERVER, "--record", trace],
                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        ours_create = timed("our cluster ok and clean", lambda: ok_and_clean(ours_ports), t)
        print(f"redis-operator: created in {ours_create:.1f} s", flush=True)
        arc.load(ours_ports, a.keys)
        arc.wait(lambda: keys_on_masters(ours_base) == a.keys, f"{a.keys:,} keys loaded", 120)
        before = {p for p, serves in masters_of(ours_base) if serves}
        t = time.time()
        out = op("local", "scale", "--name", "bench", "--dir", ours_dir, "--masters", str(total))
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        all_ours = list(range(ours_base, ours_base + 2 * total))
        ours_scale = timed("our masters balanced", lambda: scaled(ours_base, total, all_ours, a.keys), t)
        moved = sum(int(arc.cli(p, "dbsize", check=False) or 0)
                    for p, serves in masters_of(ours_base) if serves and p not in before)
        print(f"redis-operator: scaled out in {ours_scale:.1f} s ({moved:,} keys on the new masters)",
              flush=True)
        up.send_signal(signal.SIGTERM)
        up.wait()
        up = None
        op("local", "down", "--name", "bench", "--dir", ours_dir, "--purge")
        if a.ours_only:
            failed = False
            return 0

        # The peer: the same by hand with redis-cli.
        peer_ports = list(range(peer_base, peer_base + 2 * m))
        t = time.time()
        for p in peer_ports:
            servers.start(p)
        subprocess.run([arc.CLI, "--cluster", "create", *[f"127.0.0.1:{p}" for p in peer_ports],
                        "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, check=True)
        peer_create = timed("peer cluster ok and clean", lambda: ok_and_clean(peer_ports), t)
        print(f"{cli_name}: created in {peer_create:.1f} s", flush=True)
        arc.load(peer_ports, a.keys)
        arc.wait(lambda: keys_on_masters(peer_base) == a.keys, f"{a.keys:,} keys loaded", 120)
        new_masters = list(range(peer_base + 2 * m, peer_base + 2 * m + a.add))
        new_replicas = list(range(peer_base + 2 * m + a.add, peer_base + 2 * total))
        extra = [] if a.pipeline is None else ["--cluster-pipeline", str(a.pipeline)]
        t = time.time()
        for p in new_masters + new_replicas:
            servers.start(p)
        def add_node(*args):
            # `add-node` first checks the cluster and refuses while nodes disagree (the node
            # added just before is still being gossiped): a person retries.
            arc.wait(lambda: subprocess.run([arc.CLI, "--cluster", "add-node", *args],
                                            capture_output=True).returncode == 0,
                     f"add-node {args[0]}", 600)
        for p in new_masters:
            add_node(f"127.0.0.1:{p}", f"127.0.0.1:{peer_base}")
        arc.wait(lambda: ok_and_clean(peer_ports + new_masters), "new masters known", 1800)
        for p in new_replicas:
            # Without a master id, redis-cli picks a master with the fewest replicas: a new one.
            add_node(f"127.0.0.1:{p}", f"127.0.0.1:{peer_base}", "--cluster-slave")
        arc.wait(lambda: ok_and_clean(peer_ports + new_masters + new_replicas), "new replicas known", 1800)
        out = subprocess.run([arc.CLI, "--cluster", "rebalance", f"127.0.0.1:{peer_base}",
                              "--cluster-use-empty-masters", *extra], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"rebalance failed: {out.stdout[-2000:]} {out.stderr[-1000:]}")
        # redis-cli's rebalance stops within its own threshold (2 % of a master's slot
        # weight): in the first full run it left a master 7.3 % above its share of keys, so
        # our 2 % test would never pass. The peer's clock stops when every new master serves
        # slots and the check is clean, a looser end than ours; how far from even it ended
        # is printed.
        all_peer = peer_ports + new_masters + new_replicas
        peer_scale = timed("peer masters serving", lambda: serving(peer_base) == total
                           and arc.check_clean(peer_base), t)
        print(f"{cli_name}: scaled out in {peer_scale:.1f} s; the master furthest from its share "
              f"of keys is {spread(peer_base):.1%} off; keys held {keys_on_masters(peer_base)} of "
              f"{a.keys:,}", flush=True)

        print(f"| measure | redis-operator | {cli_name} --cluster | ratio (>1: redis-operator faster) |")
        print("|---|---|---|---|")
        print(f"| create {m} x 1 until ok everywhere and check clean | {ours_create:.1f} s | "
              f"{peer_create:.1f} s | {peer_create / ours_create:.2f}x |")
        print(f"| scale out {m} -> {total} x 1 with {a.keys:,} keys, until check clean (ours: and every "
              f"master within 2 % of its share of slots, every key held) | {ours_scale:.1f} s | {peer_scale:.1f} s | "
              f"{peer_scale / ours_scale:.2f}x |")
        print(f"# load average at the end {os.getloadavg()[0]:.1f}", flush=True)
        failed = False
    finally:
        if up is not None:
            up.send_signal(signal.SIGTERM)
            up.wait()
        servers.stop()
        if failed:
            # The nodes' logs and nodes.conf files are the evidence of what went wrong.
            op("local", "down", "--name", "bench", "--dir", ours_dir)
            print(f"# kept {root} (every node's redis.log and nodes.conf)", file=sys.stderr)
        else:
            op("local", "down", "--name", "bench", "--dir", ours_dir, "--purge")
            shutil.rmtree(root, ignore_errors=True)


def scaled(port, masters, ports, loaded):
    """`masters` masters serve slots, each within 2 % of its share of the slots, every loaded
    key held, check clean.
    Raises when the masters hold fewer keys than were loaded once no slot is open anywhere,
    three reads in a row: a loss must stop the benchmark with the figure rather than leave it
    waiting for a balance that cannot come (it happened once, see docs/reliability.md). While
    slots move, a short count proves nothing: the DBSIZE of one master after another can read
    the target before a batch arrives and the source after it left (2026-11-30: 260 "lost"
    mid-move)."""
    held = keys_on_masters(port)
    if held is not None and held < loaded and not any_slot_open(port):
        short = [held]
        for _ in range(2):
            time.sleep(1)
            again = keys_on_masters(port)
            if again is None or again >= loaded or any_slot_open(port):
                short = []
                break
            short.append(again)
        if short:
            raise RuntimeError(f"{loaded - max(short):,} of {loaded:,} keys lost "
                               f"(three reads with no slot open: {short})")
    return (serving(port) == masters and slots_balanced(port) and held == loaded
            and arc.check_clean(port))


def slots_balanced(port):
    """Every master serving slots holds within 2 % of its share of the 16,384 slots: what the
    operator balances (as `redis-cli --cluster rebalance` does). Keys are not even per slot: on
    Valkey (2026-11-30) a master of 148 slots ended 2.4 % under its share of 2M keys, and a
    test on keys never passed."""
    counts = []
    for ranges in arc.owners(port).values():
        n = 0
        for r in ranges:
            a, _, b = r.partition("-")
            n += int(b or a) - int(a) + 1
        if n:
            counts.append(n)
    share = 16384 / max(len(counts), 1)
    return bool(counts) and all(abs(c - share) <= 0.02 * share for c in counts)


def any_slot_open(port):
    """Some node in `port`'s view, or `port` itself, shows a migrating or importing marker
    (`[slot->-id]` / `[slot-<-id]` in its own CLUSTER NODES line)."""
    for line in arc.cli(port, "cluster", "nodes").splitlines():
        f = line.split()
        if len(f) < 2 or "fail" in f[2] or "master" not in f[2]:
            continue
        addr = f[1].split("@")[0]
        own = arc.cli(int(addr.rsplit(":", 1)[1]), "cluster", "nodes", check=False) or ""
        if any("myself" in l and ("->-" in l or "-<-" in l) for l in own.splitlines()):
            return True
    return False


def keys_on_masters(port):
    """The sum of DBSIZE over every master in `port`'s view, serving slots or not yet (a new
    master holds the keys it imports before it owns their slots, and `masters_of` lists only
    masters with slots), or None when one did not answer."""
    total = 0
    for line in arc.cli(port, "cluster", "nodes").splitlines():
        f = line.split()
        if len(f) < 3 or "master" not in f[2]:
            continue
        out = arc.cli(int(f[1].split("@")[0].rsplit(":", 1)[1]), "dbsize", check=False).strip()
        if not out.isdigit():
            return None
        total += int(out)
    return total


def serving(port):
    """How many masters serve slots in `port`'s view."""
    return sum(1 for _, serves in masters_of(port) if serves)


def spread(port):
    """How far the master furthest from its share of the keys is from it (a fraction)."""
    keys = [int(arc.cli(p, "dbsize", check=False) or 0) for p, serves in masters_of(port) if serves]
    share = sum(keys) / max(len(keys), 1)
    return max(abs(k - share) / share for k in keys) if share else 0.0


def masters_of(port):
    """(port, serves slots) for every master `port`'s view lists."""
    return [(int(addr.rsplit(":", 1)[1]), bool(ranges)) for addr, ranges in arc.owners(port).items()]


if __name__ == "__main__":
    sys.exit(main())
