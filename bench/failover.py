#!/usr/bin/env python3
"""A master SIGKILLed: how soon its slots are writable again, and the cluster clean again,
with redis-operator's local mode beside Redis alone (issue 13, point 1), in one run.

Both sides: 3 masters x 1 replica, cluster-node-timeout 5000 ms, the same redis-server.
  - writable again: a key of the killed master's slots, written through a surviving master
    with redirections followed (`redis-cli -c SET`), succeeds;
  - clean again: every node answers `cluster_state:ok`, every view lists 6 nodes with no
    `fail`/`noaddr`, 3 replicas, and `redis-cli --cluster check` is clean.
Redis alone: nothing restarts the killed process until its replica was promoted (a supervisor
restarting it at once would bring back an empty master still owning its slots: every key
of those slots lost); then it is started again with its nodes.conf, so "clean again" is
possible for Redis alone too.
For our side the operator's log gives a per-step timeline (kill, death seen, failover
ordered, member restarted, re-attached).

Usage: bench/failover.py [--runs 3] [--kills 3] [--binary target/release/redis-operator]
Each run is a fresh cluster per side (ours, then Redis alone), killed --kills times in a row
(each kill once the cluster is clean and every replica synced again).
Not run in CI. Ports 17000-17005 (ours) and 17100-17105 (peer), bus ports +10000, loopback.
"""
import argparse, os, re, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from against_redis_cli import Servers, cli, slot_of, wait  # noqa: E402

OURS = list(range(17000, 17006))
PEER = list(range(17100, 17106))


def masters(port):
    """{port: (node id, [slot ranges])} of the masters in `port`'s view that own slots."""
    out = {}
    for line in cli(port, "cluster", "nodes", check=False).splitlines():
        f = line.split()
        if len(f) > 8 and "master" in f[2] and "fail" not in f[2]:
            out[int(f[1].split("@")[0].rsplit(":", 1)[1])] = (f[0], f[8:])
    return out


def key_of(ranges):
    """A key whose slot is in `ranges`."""
    owned = set()
    for r in ranges:
        if r.startswith("["):
            continue
        a, _, b = r.partition("-")
        owned.update(range(int(a), int(b or a) + 1))
    i = 0
    while slot_of(f"k{i}") not in owned:
        i += 1
    return f"k{i}"


def pid_of(port):
    m = re.search(r"process_id:(\d+)", cli(port, "info", "server"))
    return int(m.group(1))


def clean(ports):
    for p in ports:
        if "cluster_state:ok" not in cli(p, "cluster", "info", check=False):
            return False
        view = cli(p, "cluster", "nodes", check=False)
        if len(view.splitlines()) != 6 or "fail" in view or "noaddr" in view or view.count("slave") != 3:
            return False
    out = subprocess.run(["redis-cli", "--cluster", "check", f"127.0.0.1:{ports[0]}"], capture_output=True, text=True)
    return out.returncode == 0 and "[WARNING]" not in out.stdout and "[ERR]" not in out.stdout


def synced(ports):
    """Every replica's link to its master is up: a replica that never finished its first sync
    is never elected by Redis (its data age is unbounded), so killing its master then would
    time Redis alone out."""
    for p in ports:
        info = cli(p, "info", "replication", check=False)
        if "role:slave" in info and "master_link_status:up" not in info:
            return False
    return True


def kill_and_time(ports, after_writable=None, writable_timeout=60):
    """SIGKILLs the master of ports[0]'s view with the lowest port, returns (t0, writable s,
    clean s); writable is None when no failover happened within `writable_timeout`."""
    wait(lambda: synced(ports), "replicas synced", timeout=120)
    view = masters(ports[0])
    victim = min(view)
    key = key_of(view[victim][1])
    survivor = next(p for p in sorted(view) if p != victim)
    pid = pid_of(victim)
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)

    def writable():
        out = subprocess.run(["redis-cli", "-c", "-p", str(survivor), "SET", key, "v"],
                             capture_output=True, text=True)
        return out.stdout.strip() == "OK"
    try:
        wait(writable, "writable again", timeout=writable_timeout)
    except RuntimeError:
        return t0, None, None
    t_w = time.time() - t0
    if after_writable:
        after_writable(victim)
    wait(lambda: clean(ports), "clean again", timeout=180)
    return t0, t_w, time.time() - t0


def timeline(log, t0):
    """The operator's steps after the kill, in seconds from it."""
    steps = []
    for line in open(log, errors="replace"):
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+\w+\s+(.*)", line)
        if not m:
            continue
        t = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        t += float("0." + m.group(1)[20:])
        if t >= t0 - 0.05:
            steps.append((t - t0, m.group(2)[:110]))
    return steps


def election_lines(state_dir):
    """What every node's log says about elections and votes (the voters' refusals say why an
    election lost)."""
    out = []
    for root, _, files in os.walk(state_dir):
        for f in files:
            if f == "redis.log":
                for line in open(os.path.join(root, f), errors="replace"):
                    if re.search(r"Failover auth|election|Taking over|FAIL message|configEpoch", line):
                        out.append(f"{os.path.basename(root)}: {line.rstrip()}")
    return out


def ours_run(binary, root, i, kills, log_lines):
    d = os.path.join(root, f"ours-{i}")
    os.makedirs(d)
    manifest = os.path.join(d, "c.yaml")
    with open(manifest, "w") as f:
        f.write("apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: fo\nspec:\n"
                f"  masters: 3\n  replicas: 1\n  basePort: {OURS[0]}\n  clusterNodeTimeoutMs: 5000\n")
    log = os.path.join(d, "operator.log")
    state = os.path.join(d, "state")
    up = subprocess.Popen([binary, "local", "up", "-f", manifest, "--dir", state, "--listen", "off"],
                          stdout=open(log, "w"), stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="info"),
                          start_new_session=True)
    results = []
    try:
        wait(lambda: clean(OURS), "our cluster ready", timeout=120)
        time.sleep(1)
        for k in range(kills):
            t0, t_w, t_c = kill_and_time(OURS)
            results.append((t_w, t_c, timeline(log, t0)))
            if t_w is None or t_w > 2:
                # Slow or no failover: keep what the nodes said about the elections.
                log_lines.extend([f"-- ours run {i} kill {k}"] + election_lines(state))
            if t_w is None:
                break
        return results
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait()
        subprocess.run([binary, "local", "down", "--name", "fo", "--dir", state, "--purge"],
                       capture_output=True)


def peer_run(root, i, kills):
    servers = Servers(os.path.join(root, f"peer-{i}"))
    results = []
    try:
        for p in PEER:
            servers.start(p)
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in PEER],
                        "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, check=True)
        wait(lambda: clean(PEER), "peer cluster ready", timeout=120)
        time.sleep(1)
        for _ in range(kills):
            # Once the replica took over, the killed process is started again with its nodes.conf.
            _, t_w, t_c = kill_and_time(PEER, after_writable=lambda port: (servers.procs[port].wait(), servers.start(port)))
            results.append((t_w, t_c))
            if t_w is None:
                break
        return results
    finally:
        servers.stop()


def fmt(x):
    return "none" if x is None else f"{x:.2f}"


def dist(xs):
    """min / median / max of the kills that failed over, and how many did not."""
    ok = sorted(x for x in xs if x is not None)
    missing = len(xs) - len(ok)
    if not ok:
        return f"no failover in {len(xs)}"
    s = f"{ok[0]:.2f} / {statistics.median(ok):.2f} / {ok[-1]:.2f} s (n={len(ok)})"
    return s + (f", {missing} without failover in 60 s" if missing else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="fresh clusters per side")
    ap.add_argument("--kills", type=int, default=3, help="master kills per cluster")
    ap.add_argument("--binary", default="target/release/redis-operator")
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    root = tempfile.mkdtemp(prefix="rop-failover-")
    ours, peer, log_lines = [], [], []
    for i in range(a.runs):
        for k, (w, c, steps) in enumerate(ours_run(binary, root, i, a.kills, log_lines)):
            ours.append((w, c))
            print(f"ours run {i} kill {k}: writable {fmt(w)} s, clean {fmt(c)} s")
            for t, what in steps[:8]:
                print(f"   +{t:6.3f} s  {what}")
        for k, (w, c) in enumerate(peer_run(root, i, a.kills)):
            peer.append((w, c))
            print(f"redis alone run {i} kill {k}: writable {fmt(w)} s, clean {fmt(c)} s", flush=True)
    if log_lines:
        path = os.path.join(root, "elections.log")
        with open(path, "w") as f:
            f.write("\n".join(log_lines) + "\n")
        print(f"election log lines of slow kills: {path}")
    med = lambda xs: statistics.median([x for x in xs if x is not None] or [float("nan")])
    ow, oc = med([x[0] for x in ours]), med([x[1] for x in ours])
    pw, pc = med([x[0] for x in peer]), med([x[1] for x in peer])
    print(f"\nwritable again, min / median / max: ours {dist([x[0] for x in ours])}; Redis alone {dist([x[0] for x in peer])}")
    print(f"clean again, min / median / max: ours {dist([x[1] for x in ours])}; Redis alone {dist([x[1] for x in peer])}")
    print("\n| master SIGKILLed, 3x1, node timeout 5000 ms | redis-operator (local) | Redis alone | ratio (ours/Redis) |")
    print("|---|---|---|---|")
    print(f"| writable again, median of {len(ours)} kills | {ow:.2f} s | {pw:.2f} s | {ow / pw:.3f}x (target <= 0.1x) |")
    print(f"| clean again, median of {len(ours)} kills | {oc:.2f} s | {pc:.2f} s | {oc / pc:.2f}x (target <= 0.3x) |")


if __name__ == "__main__":
    main()
