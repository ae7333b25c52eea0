#!/usr/bin/env python3
"""Benchmark redis-operator against `redis-cli --cluster` on this machine, in one run, with the
same redis-server binary, configuration and data, and print every figure and the ratio.

  1. creation of 3 masters x 1 replica until cluster_state:ok on every node;
  2. rebalance of N keys (default 1M) from 3 to 4 masters: redis-cli `rebalance
     --cluster-use-empty-masters` with its default pipeline (10) and with --cluster-pipeline 1000;
  3. draining the 4th master back to 3 (redis-cli: rebalance with weight 0 for it);
  4. both scalings end to end: from the scale command (for redis-cli: starting the server,
     `add-node`, waiting until the cluster knows it, `rebalance`; for the drain also `del-node`)
     until every master holds its share of keys within 2 % and `--cluster check` is clean,
     with redis-operator's passes printed as a per-step timeline.

Usage: bench/against_redis_cli.py [--keys N] [--create-runs N] [--only-create]
                                  [--binary target/release/redis-operator]
                                  [--server-binary valkey-server --cli valkey-cli]
                                  [--base-port 16000]
On Valkey 8.1 (scripts/valkey.sh): --server-binary target/tools/valkey/bin/valkey-server
--cli target/tools/valkey/bin/valkey-cli. The server binary runs on both sides (redis-operator
gets it as `local up --server-binary`), the cli drives the peer's `--cluster` commands.
Every server binds 127.0.0.1, ports BASE to BASE+33 (bus +10000); all are stopped at the end.
"""
import argparse, json, os, shutil, signal, subprocess, sys, tempfile, time

def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc

# The server both sides run and the peer's cli: Redis' by default; --server-binary/--cli pick
# others (Valkey's valkey-server and valkey-cli from scripts/valkey.sh).
SERVER, CLI = "redis-server", "redis-cli"

def slot_of(key: str) -> int:
    k = key.encode()
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return crc16(k) % 16384

def cli(port, *args, check=True):
    out = subprocess.run([CLI, "-p", str(port), *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"{CLI} -p {port} {' '.join(args)}: {out.stderr}")
    return out.stdout

def wait(cond, what, timeout=120):
    start = time.time()
    while not cond():
        if time.time() - start > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)

def cluster_ok(ports):
    return all("cluster_state:ok" in cli(p, "cluster", "info", check=False) for p in ports)

def owners(port):
    """slot ranges per master address, from CLUSTER NODES."""
    out = {}
    for line in cli(port, "cluster", "nodes").splitlines():
        f = line.split()
        if "master" in f[2] and len(f) > 8:
            out[f[1].split("@")[0]] = [r for r in f[8:] if not r.startswith("[")]
    return out

def load(ports, n):
    """Writes n keys through redis-cli --pipe, each to the node owning its slot."""
    owner = {}
    for addr, ranges in owners(ports[0]).items():
        port = int(addr.rsplit(":", 1)[1])
        for r in ranges:
            a, _, b = r.partition("-")
            for s in range(int(a), int(b or a) + 1):
                owner[s] = port
    per = {}
    for i in range(n):
        k = f"key:{i}"
        per.setdefault(owner[slot_of(k)], []).append(k)
    for port, keys in per.items():
        payload = "".join(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n$8\r\nvalue-{i % 100:02d}\r\n" for i, k in enumerate(keys))
        subprocess.run([CLI, "-p", str(port), "--pipe"], input=payload.encode(), capture_output=True, check=True)

class Servers:
    """redis-server processes configured exactly as redis-operator's local backend does."""
    def __init__(self, root, node_timeout_ms=5000):
        self.root, self.procs, self.node_timeout_ms = root, {}, node_timeout_ms
    def start(self, port):
        d = os.path.join(self.root, f"n{port}")
        os.makedirs(d, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [SERVER, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms), "--dir", d,
             "--save", "", "--appendonly", "no", "--protected-mode", "no", "--maxmemory", "2gb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: cli(port, "ping", check=False).strip() == "PONG", f"redis-server on {port}")
    def stop(self):
        for p in self.procs.values():
            p.kill()
            p.wait()

def ours_manifest(path, masters, replicas, base, node_timeout_ms=5000):
    with open(path, "w") as f:
        f.write(f"apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: bench\n"
                f"spec:\n  masters: {masters}\n  replicas: {replicas}\n  basePort: {base}\n  maxMemory: 2gb\n"
                f"  clusterNodeTimeoutMs: {node_timeout_ms}\n")

def migration_window(trace):
    """Seconds from the pass that started moving slots to the pass that found them moved (read
    from a `--record` trace): the same window `redis-cli --cluster rebalance` is timed over."""
    start = end = None
    for line in open(trace):
        r = json.loads(line)
        migrates = any(e["type"] == "migrateSlots" for e in r["decision"]["effects"])
        if migrates and start is None:
            start = r["time"]
        if start is not None and not migrates:
            end = r["time"]
            break
    return (end - start) / 1000.0

def balanced_and_clean(ports):
    """Every master holds within 2 % of its share of the keys and `--cluster check` is clean:
    where the issue's end-to-end scale-out figure stops the clock."""
    masters = [int(a.rsplit(":", 1)[1]) for a, r in owners(ports[0]).items() if r]
    keys = [int(cli(p, "dbsize", check=False) or 0) for p in masters]
    share = sum(keys) / max(len(keys), 1)
    if any(abs(k - share) > 0.02 * share for k in keys):
        return False
    return check_clean(ports[0])

def check_clean(port):
    """`--cluster check` from `port` finds every node agreeing, no open slot, no warning."""
    out = subprocess.run([CLI, "--cluster", "check", f"127.0.0.1:{port}"], capture_output=True, text=True)
    return out.returncode == 0 and "[WARNING]" not in out.stdout and "[ERR]" not in out.stdout

def steps(trace):
    """Each pass of a `--record` trace as (seconds from the first pass, what it decided): the
    per-step timeline of an end-to-end run."""
    out, t0, last = [], None, None
    for line in open(trace):
        r = json.loads(line)
        t0 = r["time"] if t0 is None else t0
        what = r["decision"]["summary"]
        n = len(r["decision"]["effects"])
        text = f"{what} [{n} effects]" if n else what
        if text != last:
            out.append(((r["time"] - t0) / 1000.0, text))
            last = text
    return out

def row(name, ours, peer, unit, higher_is_better):
    ratio = (ours / peer) if higher_is_better else (peer / ours)
    print(f"| {name} | {ours:,.2f} {unit} | {peer:,.2f} {unit} | {ratio:.2f}x |", flush=True)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--binary", default="target/release/redis-operator")
    ap.add_argument("--create-runs", type=int, default=5)
    ap.add_argument("--only-create", action="store_true")
    ap.add_argument("--server-binary", "--server", dest="server", default="redis-server",
                    help="server binary for both sides")
    ap.add_argument("--cli", default="redis-cli", help="cli for the peer's --cluster commands")
    ap.add_argument("--base-port", type=int, default=16000,
                    help="first port; BASE..BASE+33 are used (bus ports +10000)")
    a = ap.parse_args()
    global SERVER, CLI
    # Absolute: redis-operator runs in the bench's temporary directory.
    SERVER, CLI = (os.path.abspath(shutil.which(x) or x) for x in (a.server, a.cli))
    base = a.base_port
    # redis-operator's cluster, the peer's created clusters, the peer's two rebalance runs.
    OURS, PEER_CREATE, PEER_DEFAULT, PEER_PIPELINE = base, base + 10, base + 20, base + 30
    cli_name = os.path.basename(CLI)
    binary = os.path.abspath(a.binary)
    root = tempfile.mkdtemp(prefix="rop-bench-")
    servers = Servers(os.path.join(root, "peer"))
    ours_dir = os.path.join(root, "ours")
    env = dict(os.environ, RUST_LOG="warn")
    def op(*args):
        return subprocess.run([binary, *args], capture_output=True, text=True, env=env, cwd=root)
    trace = os.path.join(root, "trace.jsonl")
    def ours_up(manifest):
        if os.path.exists(trace):
            os.remove(trace)
        out = op("local", "up", "-f", manifest, "--dir", ours_dir, "--listen", "off", "--until-ready",
                 "--ready-timeout", "900", "--record", trace, "--server-binary", SERVER)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
    try:
        version = subprocess.run([SERVER, '--version'], capture_output=True, text=True).stdout.split()
        cli_version = subprocess.run([CLI, '--version'], capture_output=True, text=True).stdout.strip()
        print(f"keys: {a.keys:,}; server: {version[0]} {version[2]}; cli: {cli_version}; "
              f"load average: {os.getloadavg()[0]:.2f}")
        print(f"| measure | redis-operator | {cli_name} --cluster | ratio (>1: redis-operator better) |")
        print("|---|---|---|---|")
        # 1. creation 3x1: from nothing to cluster_state:ok everywhere, node start-up included.
        manifest = os.path.join(root, "c.yaml")
        ours_manifest(manifest, 3, 1, OURS)
        ours_ports = list(range(OURS, OURS + 6))
        def attached(ports):
            # What `redis-cli --cluster create` leaves when it returns: every node ok and three
            # nodes that report themselves replicas (their own CLUSTER NODES line).
            if not cluster_ok(ports):
                return False
            mine = [l for p in ports for l in cli(p, "cluster", "nodes", check=False).splitlines() if "myself" in l]
            return sum("slave" in l.split()[2] for l in mine) == 3
        def agreed(ports):
            # ... and every node's view already lists the three replicas (spread by gossip).
            return all(cli(p, "cluster", "nodes", check=False).count("slave") == 3 for p in ports)
        def timed_create(ports, start):
            """Seconds from `start` until attached, then until agreed."""
            wait(lambda: attached(ports), "cluster ok with replicas")
            t_attached = time.time() - start
            wait(lambda: agreed(ports), "replicas known everywhere")
            return t_attached, time.time() - start
        def ours_create_once():
            t = time.time()
            up = subprocess.Popen([binary, "local", "up", "-f", manifest, "--dir", ours_dir, "--listen", "off",
                                   "--server-binary", SERVER],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root)
            try:
                return timed_create(ours_ports, t)
            finally:
                up.send_signal(signal.SIGTERM); up.wait()
                op("local", "down", "--name", "bench", "--dir", ours_dir, "--purge")
        def peer_create_once(i):
            nonlocal servers
            servers = Servers(os.path.join(root, f"peer-create-{i}"))
            t = time.time()
            for p in peer_ports:
                servers.start(p)
            subprocess.run([CLI, "--cluster", "create", *[f"127.0.0.1:{p}" for p in peer_ports],
                            "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, check=True)
            try:
                return timed_create(peer_ports, t)
            finally:
                servers.stop()
        peer_ports = list(range(PEER_CREATE, PEER_CREATE + 6))
        # Gossip timing varies run to run: each side is created several times, alternating,
        # and the medians are compared.
        ours_runs, peer_runs = [], []
        for i in range(a.create_runs):
            ours_runs.append(ours_create_once())
            peer_runs.append(peer_create_once(i))
        med = lambda xs: sorted(xs)[len(xs) // 2]
        ours_create, ours_agreed = med([r[0] for r in ours_runs]), med([r[1] for r in ours_runs])
        peer_create, peer_agreed = med([r[0] for r in peer_runs]), med([r[1] for r in peer_runs])
        print(f"creation runs (attached/agreed, s): redis-operator {[(round(x, 2), round(y, 2)) for x, y in ours_runs]}; "
              f"{cli_name} {[(round(x, 2), round(y, 2)) for x, y in peer_runs]}", flush=True)
        t = time.time(); ours_up(manifest); ours_ready = time.time() - t
        op("local", "down", "--name", "bench", "--dir", ours_dir, "--purge")
        row(f"create 3x1 until cluster_state:ok everywhere, replicas attached (median of {a.create_runs})", ours_create, peer_create, "s", False)
        row(f"create 3x1 until every view lists the 3 replicas (median of {a.create_runs})", ours_agreed, peer_agreed, "s", False)
        servers = Servers(os.path.join(root, "peer2"))
        if a.only_create:
            return

        # 2. rebalance 3 -> 4 masters.
        ours_manifest(manifest, 3, 0, OURS)
        ours_up(manifest)
        load([OURS, OURS + 1, OURS + 2], a.keys)
        # End to end: from the scale command until every master holds its share (within 2 %)
        # and `--cluster check` is clean; the node's start, MEET and gossip are inside.
        t = time.time()
        op("local", "scale", "--name", "bench", "--dir", ours_dir, "--masters", "4")
        ours_up(manifest); ours_rebalance = time.time() - t
        wait(lambda: balanced_and_clean(list(range(OURS, OURS + 4))), "our 4 masters balanced")
        ours_out_e2e = time.time() - t
        out_steps = steps(trace)
        moved = int(cli(OURS + 3, "dbsize"))
        ours_rate = moved / migration_window(trace)
        ours_e2e = moved / ours_rebalance
        # 3. drain back to 3.
        t = time.time()
        op("local", "scale", "--name", "bench", "--dir", ours_dir, "--masters", "3")
        ours_up(manifest); ours_drain = time.time() - t
        wait(lambda: balanced_and_clean([OURS, OURS + 1, OURS + 2]), "our 3 masters balanced")
        ours_in_e2e = time.time() - t
        in_steps = steps(trace)
        ours_drain_rate = moved / migration_window(trace)
        ours_drain_e2e = moved / ours_drain
        op("local", "down", "--name", "bench", "--dir", ours_dir, "--purge")

        peer = {}
        for pipeline in (None, 1000):
            base = PEER_DEFAULT if pipeline is None else PEER_PIPELINE
            ports = [base, base + 1, base + 2]
            for p in ports:
                servers.start(p)
            subprocess.run([CLI, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-yes"],
                           capture_output=True, check=True)
            wait(lambda: cluster_ok(ports), "peer cluster ok")
            load(ports, a.keys)
            # End to end, as a person scaling by hand with redis-cli would: start the server,
            # add it, wait until the cluster knows it (rebalance refuses nodes that disagree),
            # rebalance; timed until the same balanced-and-clean state as ours.
            t_e2e = time.time()
            servers.start(base + 3)
            subprocess.run([CLI, "--cluster", "add-node", f"127.0.0.1:{base+3}", f"127.0.0.1:{base}"],
                           capture_output=True, check=True)
            # `rebalance` refuses to run until every node agrees about the configuration.
            wait(lambda: cluster_ok(ports + [base + 3]) and check_clean(base), "new node known")
            extra = [] if pipeline is None else ["--cluster-pipeline", str(pipeline)]
            t = time.time()
            subprocess.run([CLI, "--cluster", "rebalance", f"127.0.0.1:{base}", "--cluster-use-empty-masters", *extra],
                           capture_output=True, check=True)
            el = time.time() - t
            wait(lambda: balanced_and_clean(ports + [base + 3]), "peer 4 masters balanced")
            peer[(pipeline, "out_e2e")] = time.time() - t_e2e
            m = int(cli(base + 3, "dbsize"))
            peer[(pipeline, "rebalance")] = m / el
            node4 = cli(base + 3, "cluster", "myid").strip()
            t = time.time()
            subprocess.run([CLI, "--cluster", "rebalance", f"127.0.0.1:{base}", "--cluster-weight", f"{node4}=0", *extra],
                           capture_output=True, check=True)
            el = time.time() - t
            peer[(pipeline, "drain")] = m / el
            # ... and the drained node removed (as redis-operator removes it).
            subprocess.run([CLI, "--cluster", "del-node", f"127.0.0.1:{base}", node4],
                           capture_output=True, check=True)
            wait(lambda: balanced_and_clean(ports), "peer 3 masters balanced")
            peer[(pipeline, "in_e2e")] = time.time() - t
        row(f"rebalance 3->4 masters (keys/s) vs {cli_name} default pipeline", ours_rate, peer[(None, "rebalance")], "keys/s", True)
        row(f"rebalance 3->4 masters (keys/s) vs {cli_name} --cluster-pipeline 1000", ours_rate, peer[(1000, "rebalance")], "keys/s", True)
        row(f"drain 4->3 masters (keys/s) vs {cli_name} default pipeline", ours_drain_rate, peer[(None, "drain")], "keys/s", True)
        row(f"drain 4->3 masters (keys/s) vs {cli_name} --cluster-pipeline 1000", ours_drain_rate, peer[(1000, "drain")], "keys/s", True)
        row(f"scale-out 3->4 end to end (s) vs {cli_name} default pipeline", ours_out_e2e, peer[(None, "out_e2e")], "s", False)
        row(f"scale-out 3->4 end to end (s) vs {cli_name} --cluster-pipeline 1000", ours_out_e2e, peer[(1000, "out_e2e")], "s", False)
        row(f"drain 4->3 end to end (s) vs {cli_name} default pipeline", ours_in_e2e, peer[(None, "in_e2e")], "s", False)
        row(f"drain 4->3 end to end (s) vs {cli_name} --cluster-pipeline 1000", ours_in_e2e, peer[(1000, "in_e2e")], "s", False)
        for name, timeline in (("scale-out 3->4", out_steps), ("drain 4->3", in_steps)):
            print(f"redis-operator {name}, per pass (s from the first pass after the scale command):")
            for at, what in timeline:
                print(f"  {at:7.3f}  {what[:140]}")
        print(f"{moved:,} keys moved each way. redis-operator end to end (scale command to Ready, "
              f"including node start, MEET, Redis' rejoin delay, removal): rebalance "
              f"{ours_e2e:,.0f} keys/s, drain {ours_drain_e2e:,.0f} keys/s; creation until Ready "
              f"(also every replica synced and every node agreeing): {ours_ready:.2f} s; "
              f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        servers.stop()
        op("local", "down", "--name", "bench", "--dir", ours_dir, "--purge")
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
