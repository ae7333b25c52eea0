#!/usr/bin/env python3
"""Cost of one steady-state reconcile pass on a real local cluster, against `redis-cli
--cluster check` on the same cluster in the same run (issue 13, point 2).

For each size (default 3x1, 25x1, 100x1: 200 redis-server processes at 100x1) it starts the
cluster with `redis-operator local up` (HTTP API on 127.0.0.1:22990 for its metrics), waits
until it is Ready and idle (passes without effects), then over N idle passes measures:

  - bytes read from Redis per pass: the sum over every node of `total_net_output_bytes`
    (`INFO stats`: bytes written to clients, replication and the cluster bus apart) across the
    window, minus the probe's own replies, divided by the passes the operator's
    `redis_operator_reconcile_passes_total` counted in the window;
  - operator CPU per pass: user + system time of the operator process (/proc/PID/stat) over the
    window, divided by the same passes (it includes the idle waits between passes, and the two
    metrics scrapes of the window);
  - the mean wall time of a pass (`redis_operator_reconcile_duration_seconds` sum / count).

Each size is measured twice on the same cluster: first with every view read every pass
(`REDIS_OPERATOR_STEADY_VIEWS=off`: what every pass did before steady passes), then, after
`local up` is restarted on the same nodes, with steady passes (the default).

The peer, with the operator stopped (SIGSTOP) so the counters see it alone: `redis-cli
--cluster check` on the first node, its wall time, the bytes it read the same way and its CPU.

Usage: python3 bench/pass_cost.py [--sizes 3,25,100] [--passes 10] [--checks 3]
                                 [--binary target/release/redis-operator] [--server redis-server]
Ports 22000-22199 (bus 32000-32199) and 22990; every process started is stopped at the end.
"""
import argparse, os, re, resource, shutil, signal, socket, subprocess, sys, tempfile, time

BASE, LISTEN = 22000, "127.0.0.1:22990"

def resp_command(sock, *args):
    """Sends one command and returns the raw reply bytes (a bulk string or an error)."""
    out = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    sock.sendall(out.encode())
    buf = b""
    while b"\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n")
    if head[:1] != b"$":
        return buf
    n = int(head[1:])
    while len(rest) < n + 2:
        rest += sock.recv(65536)
    return buf

class Probe:
    """One connection per node reading `INFO stats`; remembers how many reply bytes it caused."""
    def __init__(self, ports):
        self.socks = {p: socket.create_connection(("127.0.0.1", p), timeout=10) for p in ports}
        self.own = 0
    def output_bytes(self):
        total = 0
        for s in self.socks.values():
            reply = resp_command(s, "INFO", "stats")
            m = re.search(rb"total_net_output_bytes:(\d+)", reply)
            total += int(m.group(1))
            # The counter read excludes this reply; the next read will include it.
            self.own += len(reply)
        return total
    def close(self):
        for s in self.socks.values():
            s.close()

def metrics():
    import urllib.request
    with urllib.request.urlopen(f"http://{LISTEN}/metrics", timeout=10) as r:
        text = r.read().decode()
    def total(name, **want):
        v = 0.0
        for line in text.splitlines():
            if not line.startswith(name):
                continue
            series, _, value = line.rpartition(" ")
            if series.split("{")[0] != name:
                continue
            if all(f'{k}="{w}"' in series for k, w in want.items()):
                v += float(value)
        return v
    return {
        "passes": total("redis_operator_reconcile_passes_total"),
        "effects": total("redis_operator_effects_total"),
        "ready": total("redis_operator_cluster_ready"),
        "dur_sum": total("redis_operator_reconcile_duration_seconds_sum"),
        "dur_count": total("redis_operator_reconcile_duration_seconds_count"),
    }

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def wait(cond, what, timeout):
    start = time.time()
    while True:
        try:
            if cond():
                return
        except OSError:
            pass
        if time.time() - start > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)

def measure(binary, server, masters, passes, checks, root, steady, peer_too):
    name = "passcost"
    manifest = os.path.join(root, f"{name}.yaml")
    with open(manifest, "w") as f:
        f.write(f"apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {name}\n"
                f"spec:\n  masters: {masters}\n  replicas: 1\n  basePort: {BASE}\n  maxMemory: 16mb\n")
    state = os.path.join(root, "state")
    log = open(os.path.join(root, f"up-{masters}-{'steady' if steady else 'off'}.log"), "w")
    env = dict(os.environ)
    env["REDIS_OPERATOR_STEADY_VIEWS"] = "on" if steady else "off"
    up = subprocess.Popen([binary, "local", "up", "-f", manifest, "--dir", state, "--listen", LISTEN,
                           "--server-binary", server], stdout=log, stderr=subprocess.STDOUT, cwd=root,
                          env=env)
    ports = [BASE + i for i in range(2 * masters)]
    peer = None
    try:
        t0 = time.time()
        wait(lambda: metrics()["ready"] >= 1, "Ready", 900)
        ready_s = time.time() - t0
        # Idle: a run of passes that executed nothing.
        def idle():
            a = metrics(); time.sleep(6); b = metrics()
            return b["passes"] - a["passes"] >= 2 and b["effects"] == a["effects"] and b["ready"] >= 1
        wait(idle, "idle passes", 600)
        probe = Probe(ports)
        m0, c0, b0 = metrics(), cpu_seconds(up.pid), probe.output_bytes()
        wait(lambda: metrics()["passes"] - m0["passes"] >= passes, f"{passes} passes", 900)
        m1, c1 = metrics(), cpu_seconds(up.pid)
        own_before = probe.own
        b1 = probe.output_bytes()
        n = m1["passes"] - m0["passes"]
        ours = {
            "bytes": (b1 - b0 - own_before) / n,
            "cpu_ms": (c1 - c0) * 1000 / n,
            "wall_ms": (m1["dur_sum"] - m0["dur_sum"]) * 1000 / max(1, m1["dur_count"] - m0["dur_count"]),
            "passes": n,
            "effects": m1["effects"] - m0["effects"],
            "rss_mb": rss_mb(up.pid),
            "ready_s": ready_s,
        }
        if not peer_too:
            probe.close()
            return ours, None
        # The peer alone: the operator stopped while redis-cli checks.
        os.kill(up.pid, signal.SIGSTOP)
        time.sleep(0.5)
        try:
            probe.own = 0
            walls, cpus = [], []
            b0 = probe.output_bytes()
            for _ in range(checks):
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.time()
                out = subprocess.run(["redis-cli", "--cluster", "check", f"127.0.0.1:{BASE}"],
                                     capture_output=True, text=True)
                walls.append(time.time() - t)
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime))
                if "[OK] All 16384 slots covered" not in out.stdout:
                    raise RuntimeError(f"redis-cli --cluster check not clean:\n{out.stdout[-2000:]}")
            own_before = probe.own
            b1 = probe.output_bytes()
            walls.sort(); cpus.sort()
            peer = {"bytes": (b1 - b0 - own_before) / checks, "wall_ms": walls[len(walls) // 2] * 1000,
                    "cpu_ms": cpus[len(cpus) // 2] * 1000}
        finally:
            os.kill(up.pid, signal.SIGCONT)
        probe.close()
        return ours, peer
    finally:
        # SIGTERM stops the nodes, keeping their identities: the next `up` brings them back.
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=300)
        except subprocess.TimeoutExpired:
            up.kill(); up.wait()
        log.close()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3,25,100")
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--checks", type=int, default=3)
    ap.add_argument("--binary", default="target/release/redis-operator")
    ap.add_argument("--server", default="redis-server")
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    server = shutil.which(a.server) or a.server
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.1f} at start, {os.cpu_count()} cores, "
          f"{subprocess.run([server, '--version'], capture_output=True, text=True).stdout.split()[2]}", flush=True)
    print("| masters x 1 | nodes | passes | pass: bytes read | pass: operator CPU | pass: wall | "
          "check: bytes read | check: CPU (redis-cli) | check: wall | bytes pass/check | wall pass/check | operator RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for masters in [int(s) for s in a.sizes.split(",")]:
        root = tempfile.mkdtemp(prefix=f"pass-cost-{masters}-")
        try:
            full, peer = measure(binary, server, masters, a.passes, a.checks, root, False, True)
            steady, _ = measure(binary, server, masters, a.passes, a.checks, root, True, False)
        except Exception:
            print(f"(logs kept in {root})", file=sys.stderr)
            raise
        finally:
            subprocess.run([binary, "local", "down", "--name", "passcost", "--dir",
                            os.path.join(root, "state"), "--purge"], capture_output=True, cwd=root)
        for label, ours in [("every view", full), ("steady", steady)]:
            print(f"| {masters} | {2 * masters} | {label} | {ours['bytes'] / 1e6:.3f} MB | {ours['cpu_ms']:.1f} ms | "
                  f"{ours['wall_ms']:.1f} ms | {peer['bytes'] / 1e6:.3f} MB | {peer['cpu_ms']:.0f} ms | "
                  f"{peer['wall_ms']:.0f} ms | {ours['bytes'] / peer['bytes']:.2f} | "
                  f"{ours['wall_ms'] / peer['wall_ms']:.2f} | {ours['rss_mb']:.1f} MB |", flush=True)
        print(f"| {masters} | | steady / every view | {steady['bytes'] / full['bytes']:.3f}x | "
              f"{steady['cpu_ms'] / full['cpu_ms']:.2f}x | {steady['wall_ms'] / full['wall_ms']:.2f}x | | | | | | |",
              flush=True)
        shutil.rmtree(root, ignore_errors=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")

if __name__ == "__main__":
    main()
