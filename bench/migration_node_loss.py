#!/usr/bin/env python3
"""A master dies in the middle of a slot migration (issue 15): does local mode heal, and does
it keep every key that existed and every acknowledged write?

Each run, in a fresh temporary state directory:
  1. `redis-operator local up --until-ready` a 3 masters x 1 replica cluster with
     `migrationBatchKeys: --batch` (slow migration, wide window), load --keys keys
     (`p:<i>` = `v<i>`, redis-cli --pipe to each slot's owner), start the operator in the
     background and a writer process (unique keys `w:<i>` = `<i>` through the cluster,
     following MOVED/ASK, recording for each acknowledged write the address that acknowledged
     it and when);
  2. `local scale --masters 4 --replicas 1`;
  3. poll every node's own CLUSTER NODES line (`myself`) every --poll-ms until one shows an
     open slot of the kind asked for — `[slot->-id]` (migrating: the source) or `[slot-<-id]`
     (importing: the target) — and SIGKILL that redis-server (pid from
     `<state>/node-<n>/redis.pid`); with `--when moved`, only once keys have moved: the
     target already holds keys, or holds keys of a slot that source is migrating;
  4. wait (at most --heal-timeout s) until healed: `local status` says 4 x 1 is ready, every
     node answers cluster_state:ok, no node has an open slot, every node's view is the same
     8 nodes with the same roles and slots and no failure flag, and `redis-cli --cluster check`
     passes; the time from the kill is the heal time;
  5. stop the writer, read every preloaded key and every acknowledged write through the
     cluster, and classify each lost acknowledged write: (a) acknowledged by the killed process
     within --async-window s before the kill (Redis replicates asynchronously: allowed, counted
     apart) or (b) any other (a real loss).

Prints a line per run and a summary, writes --json FILE, and exits 1 if any run did not heal,
lost a preloaded key or lost an acknowledged write of class (b) (2 on a setup error).

Usage: bench/migration_node_loss.py [--runs 20] [--kill source|target|both] [--keys 300000]
           [--batch 20] [--binary target/release/redis-operator] [--base-port 17000]
           [--heal-timeout 300] [--when first|moved] [--node-timeout-ms 5000]
           [--write-rate 2000] [--async-window 1.0] [--json FILE] [--logs DIR]
Not run in CI. Standard library only, plus redis-cli and redis-server on PATH. Every process
binds 127.0.0.1 on ports base..base+7 (bus +10000, so keep base+7 < 55536); every
redis-server and operator it started is stopped on exit, Ctrl-C and errors included.
"""
import argparse, json, multiprocessing, os, re, shutil, signal, socket, subprocess, sys, tempfile, time

NAME = "nodeloss"
NODES = 8  # 4 masters x 1 replica once scaled

# --- key slots --------------------------------------------------------------------------------

def _crc_table():
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
        t.append(c)
    return t

CRC = _crc_table()

def slot_of(key: bytes) -> int:
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    c = 0
    for b in key:
        c = ((c << 8) & 0xFFFF) ^ CRC[((c >> 8) ^ b) & 0xFF]
    return c % 16384

assert slot_of(b"foo") == 12182

# --- a minimal RESP client --------------------------------------------------------------------

class ReplyError(Exception):
    pass

class Conn:
    def __init__(self, port, timeout=2.0):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"connection to {self.port} closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return ReplyError(rest.decode())  # returned, not raised: pipelines keep going
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError(f"connection to {self.port} closed")
            return data[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"bad reply from {self.port}: {line!r}")

    def pipeline(self, cmds):
        self.sock.sendall(b"".join(self.encode(c) for c in cmds))
        return [self.read() for _ in cmds]

    def call(self, *args):
        r = self.pipeline([args])[0]
        if isinstance(r, ReplyError):
            raise r
        return r

def query(port, *args, timeout=1.0):
    """One command on a fresh connection; None when the node does not answer."""
    try:
        c = Conn(port, timeout)
    except OSError:
        return None
    try:
        r = c.call(*args)
        return r.decode() if isinstance(r, bytes) else r
    except (OSError, ConnectionError, ReplyError):
        return None
    finally:
        c.close()

class Cluster:
    """Routes keys by a slot map from CLUSTER SLOTS, follows MOVED and ASK."""

    def __init__(self, ports, timeout=1.0):
        self.ports, self.timeout = list(ports), timeout
        self.owner = [None] * 16384
        self.conns = {}

    def conn(self, port):
        c = self.conns.get(port)
        if c is None:
            c = self.conns[port] = Conn(port, self.timeout)
        return c

    def drop(self, port):
        c = self.conns.pop(port, None)
        if c:
            c.close()

    def close(self):
        for p in list(self.conns):
            self.drop(p)

    def refresh(self):
        for p in self.ports:
            try:
                slots = self.conn(p).call("CLUSTER", "SLOTS")
            except (OSError, ConnectionError, ReplyError):
                self.drop(p)
                continue
            if not slots:
                continue
            for r in slots:
                for s in range(r[0], r[1] + 1):
                    self.owner[s] = int(r[2][1])
            return True
        return False

    def command(self, key, *args, tries=20):
        """Runs `args` (key included) for `key`: (reply, port that answered). Raises the last
        error when every try failed (the write is then not acknowledged)."""
        slot = slot_of(key)
        ask = None
        last = None
        for attempt in range(tries):
            port = ask or self.owner[slot]
            if port is None:
                self.refresh()
                port = self.owner[slot]
                if port is None:
                    time.sleep(0.05)
                    continue
            try:
                c = self.conn(port)
                if ask:
                    reply = c.pipeline([("ASKING",), args])[1]
                else:
                    reply = c.pipeline([args])[0]
            except (OSError, ConnectionError) as e:
                self.drop(port)
                last, ask = e, None
                time.sleep(min(0.01 * (attempt + 1), 0.2))
                self.refresh()
                continue
            ask = None
            if isinstance(reply, ReplyError):
                msg = str(reply)
                if msg.startswith("MOVED"):
                    self.owner[slot] = int(msg.split()[2].rsplit(":", 1)[1])
                    continue
                if msg.startswith("ASK"):
                    ask = int(msg.split()[2].rsplit(":", 1)[1])
                    continue
                # CLUSTERDOWN, TRYAGAIN, LOADING, ...: wait and look again
                last = reply
                time.sleep(min(0.01 * (attempt + 1), 0.2))
                self.refresh()
                continue
            return reply, port
        raise last or RuntimeError(f"no answer for {key!r}")

# --- the writer (a process of its own) ---------------------------------------------------------

def writer_main(ports, out_path, stop, rate, t0):
    """SET w:<i> = <i>, one at a time, at most `rate` per second, until `stop`; appends
    `i port t` (t seconds since t0) for every acknowledged write to out_path."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)  # the parent decides when we stop
    cl = Cluster(ports, timeout=1.0)
    cl.refresh()
    i = 0
    start = time.time()
    with open(out_path, "w") as out:
        while not stop.is_set():
            key = b"w:%d" % i
            try:
                reply, port = cl.command(key, "SET", key, str(i), tries=10)
                if reply == "OK":
                    out.write(f"{i} {port} {time.time() - t0:.6f}\n")
            except Exception:  # noqa: BLE001 - not acknowledged, whatever the reason
                pass
            i += 1
            ahead = i / rate - (time.time() - start)
            if ahead > 0:
                time.sleep(ahead)
    cl.close()

# --- processes we own -----------------------------------------------------------------------

class Run:
    """One run's cluster: operator, nodes and writer, all stopped by close()."""

    def __init__(self, a, root, index):
        self.a, self.index = a, index
        self.dir = os.path.join(root, f"run-{index}")
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.dir)
        self.manifest = os.path.join(self.dir, "cluster.yaml")
        self.ports = [a.base_port + n for n in range(NODES)]
        self.operator = None
        self.writer = None
        self.stop_writer = None
        self.env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        with open(self.manifest, "w") as f:
            f.write(f"apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {NAME}\n"
                    f"spec:\n  masters: 3\n  replicas: 1\n  basePort: {a.base_port}\n  maxMemory: 1gb\n"
                    f"  clusterNodeTimeoutMs: {a.node_timeout_ms}\n  migrationBatchKeys: {a.batch}\n")

    def op(self, *args, timeout=120):
        return subprocess.run([self.a.binary, *args], capture_output=True, text=True, env=self.env,
                              cwd=self.dir, timeout=timeout)

    def up_until_ready(self):
        out = self.op("local", "up", "-f", self.manifest, "--dir", self.state, "--listen", "off",
                      "--until-ready", "--ready-timeout", "120", timeout=180)
        if out.returncode != 0:
            raise RuntimeError(f"local up --until-ready failed: {out.stderr[-2000:]}")

    def start_operator(self):
        self.log = open(os.path.join(self.dir, "operator.log"), "w")
        self.operator = subprocess.Popen(
            [self.a.binary, "local", "up", "-f", self.manifest, "--dir", self.state, "--listen", "off",
             "--record", os.path.join(self.dir, "trace.jsonl")],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env, cwd=self.dir, start_new_session=True)

    def operator_log(self):
        try:
            with open(os.path.join(self.dir, "operator.log")) as f:
                return re.sub(r"\x1b\[[0-9;]*m", "", f.read())
        except OSError:
            return ""

    def status(self):
        try:
            return self.op("local", "status", "--name", NAME, "--dir", self.state, timeout=30).stdout
        except subprocess.TimeoutExpired:
            return ""

    def scale(self, masters, replicas):
        out = self.op("local", "scale", "--name", NAME, "--dir", self.state, "--masters", str(masters),
                      "--replicas", str(replicas))
        if out.returncode != 0:
            raise RuntimeError(f"local scale failed: {out.stderr}")

    def start_writer(self, t0):
        ctx = multiprocessing.get_context("fork")
        self.stop_writer = ctx.Event()
        self.acked_path = os.path.join(self.dir, "acked.txt")
        self.writer = ctx.Process(target=writer_main, daemon=True,
                                  args=(self.ports, self.acked_path, self.stop_writer, self.a.write_rate, t0))
        self.writer.start()

    def end_writer(self):
        """Stops the writer; [(i, port, t)] of every acknowledged write."""
        if self.writer is None:
            return []
        self.stop_writer.set()
        self.writer.join(30)
        if self.writer.is_alive():
            self.writer.kill()
            self.writer.join(5)
        self.writer = None
        acked = []
        with open(self.acked_path) as f:
            for line in f:
                i, port, t = line.split()
                acked.append((int(i), int(port), float(t)))
        return acked

    def pid(self, ordinal):
        try:
            with open(os.path.join(self.state, f"node-{ordinal}", "redis.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def our_redis_pids(self):
        """Every live redis-server whose working directory lies in this run's directory."""
        pids = []
        root = os.path.realpath(self.dir)
        for e in os.listdir("/proc"):
            if not e.isdigit():
                continue
            try:
                with open(f"/proc/{e}/comm") as f:
                    if not f.read().startswith("redis-server"):
                        continue
                cwd = os.readlink(f"/proc/{e}/cwd")
            except OSError:
                continue
            if cwd == root or cwd.startswith(root + os.sep):
                pids.append(int(e))
        return pids

    def close(self):
        # Not interruptible: a second Ctrl-C must not leave half of the processes running.
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            self._close()
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _close(self):
        if self.writer is not None:
            self.stop_writer.set()
            self.writer.join(5)
            if self.writer.is_alive():
                self.writer.kill()
                self.writer.join(5)
            self.writer = None
        if self.operator is not None:
            if self.operator.poll() is None:
                self.operator.send_signal(signal.SIGTERM)
                try:
                    self.operator.wait(30)
                except subprocess.TimeoutExpired:
                    self.operator.kill()
                    self.operator.wait(10)
            self.operator = None
            self.log.close()
        if os.path.exists(os.path.join(self.state, "cluster.yaml")):
            try:
                self.op("local", "down", "--name", NAME, "--dir", self.state, timeout=60)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.our_redis_pids():  # belt and braces: only processes in our directory
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.time() + 10
        while self.our_redis_pids() and time.time() < deadline:
            time.sleep(0.05)

# --- cluster views --------------------------------------------------------------------------

def cached_call(port, conn_cache, *args):
    """One command on a cached connection; None when the node does not answer."""
    c = conn_cache.get(port)
    try:
        if c is None:
            c = conn_cache[port] = Conn(port, 0.5)
        return c.call(*args)
    except (OSError, ConnectionError, ReplyError):
        if c is not None:
            c.close()
        conn_cache.pop(port, None)
        return None

def myself_line(port, conn_cache):
    """(own CLUSTER NODES line, {node id: port}) or (None, {})."""
    text = cached_call(port, conn_cache, "CLUSTER", "NODES")
    if text is None:
        return None, {}
    mine, ports = None, {}
    for line in text.decode().splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        if "myself" in f[2]:
            mine = line
        try:
            ports[f[0]] = int(f[1].split("@")[0].rsplit(":", 1)[1])
        except ValueError:
            pass
    return mine, ports

def ready_to_kill(kind, when, port, line, ports, cache):
    """With --when first: any open slot of `kind`. With --when moved: a source whose target
    already holds keys of a slot it migrates, or a target already holding keys. Returns
    (slot, keys already on the target) or None."""
    opened = [o for o in open_slots(line) if o[0] == kind]
    if not opened:
        return None
    if when == "first":
        return opened[0][1], None
    if kind == "target":
        n = cached_call(port, cache, "DBSIZE")
        return (opened[0][1], n) if n else None
    for _, slot, peer in opened:
        tp = ports.get(peer)
        n = tp and cached_call(tp, cache, "CLUSTER", "COUNTKEYSINSLOT", slot)
        if n:
            return slot, n
    return None

def open_slots(line):
    """(kind, slot, peer id) for every open slot of a CLUSTER NODES line."""
    out = []
    for tok in line.split()[8:]:
        if tok.startswith("["):
            body = tok.strip("[]")
            if "->-" in body:
                s, peer = body.split("->-")
                out.append(("source", int(s), peer))
            elif "-<-" in body:
                s, peer = body.split("-<-")
                out.append(("target", int(s), peer))
    return out

def view(port):
    """One node's view: {id: (addr, role, master, slots)}, plus every flag it shows."""
    text = query(port, "CLUSTER", "NODES")
    if text is None:
        return None, None
    nodes, flags = {}, set()
    for line in text.splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        fl = set(f[2].split(","))
        flags |= fl - {"myself", "master", "slave"}
        role = "master" if "master" in fl else "replica" if "slave" in fl else f[2]
        slots = tuple(t for t in f[8:] if not t.startswith("["))
        if any(t.startswith("[") for t in f[8:]):
            flags.add("open-slot")
        nodes[f[0]] = (f[1].split("@")[0], role, f[3], slots)
    return nodes, flags

def healed(run):
    """None when healed, else why not (the first reason found)."""
    st = run.status()
    if f"4 masters x 1 replicas wanted; ready:" not in st:
        return "operator: " + (st.splitlines()[0] if st else "no status")
    views = []
    for p in run.ports:
        info = query(p, "CLUSTER", "INFO")
        if info is None:
            return f"{p} does not answer"
        if "cluster_state:ok" not in info:
            return f"{p} cluster_state not ok"
        v, flags = view(p)
        if v is None:
            return f"{p} does not answer CLUSTER NODES"
        if flags - {"noflags", ""}:
            return f"{p} shows {sorted(flags - {'noflags', ''})}"
        if len(v) != NODES:
            return f"{p} knows {len(v)} nodes"
        views.append(v)
    if any(v != views[0] for v in views[1:]):
        return "views differ"
    roles = [r for (_, r, _, _) in views[0].values()]
    if roles.count("master") != 4 or roles.count("replica") != 4:
        return f"roles {sorted(roles)}"
    out = subprocess.run(["redis-cli", "--cluster", "check", f"127.0.0.1:{run.ports[0]}"],
                         capture_output=True, text=True, timeout=30)
    text = out.stdout
    if out.returncode != 0 or "[OK] All 16384 slots covered" not in text or "[ERR]" in text or "[WARNING]" in text:
        return "redis-cli --cluster check: " + " / ".join(l for l in text.splitlines() if "ERR" in l or "WARN" in l)[:300]
    return None

# --- load and verify ------------------------------------------------------------------------

def owners_by_slot(port):
    slots = Conn(port).call("CLUSTER", "SLOTS")
    owner = [None] * 16384
    for r in slots:
        for s in range(r[0], r[1] + 1):
            owner[s] = int(r[2][1])
    return owner

def load(ports, n):
    owner = owners_by_slot(ports[0])
    per = {}
    for i in range(n):
        k = b"p:%d" % i
        v = b"v%d" % i
        per.setdefault(owner[slot_of(k)], []).append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
    for port, cmds in per.items():
        out = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=b"".join(cmds),
                             capture_output=True, timeout=300)
        if out.returncode != 0 or b"errors: 0" not in out.stdout:
            raise RuntimeError(f"loading into {port}: {out.stdout[-300:]!r} {out.stderr[-300:]!r}")

def read_all(ports, items, deadline):
    """items: [(key bytes, expected bytes)] -> (lost keys, unreadable keys). Pipelined GETs per
    owner; anything redirected or failed is retried one by one through the redirects until
    `deadline` (a key still unread then is unreadable, not lost)."""
    cl = Cluster(ports, timeout=2.0)
    cl.refresh()
    lost, retry = [], []
    per = {}
    for k, v in items:
        per.setdefault(cl.owner[slot_of(k)], []).append((k, v))
    for port, kvs in per.items():
        for j in range(0, len(kvs), 2000):
            chunk = kvs[j:j + 2000]
            try:
                replies = cl.conn(port).pipeline([("GET", k) for k, _ in chunk])
            except (OSError, ConnectionError, TypeError):
                cl.drop(port)
                retry.extend(chunk)
                continue
            for (k, v), r in zip(chunk, replies):
                if isinstance(r, ReplyError):
                    retry.append((k, v))
                elif r != v:
                    lost.append(k)
    unreadable = []
    for k, v in retry:
        if time.time() > deadline:
            unreadable.append(k)
            continue
        while True:
            try:
                r, _ = cl.command(k, "GET", k, tries=10)
                if r != v:
                    lost.append(k)
                break
            except Exception:  # noqa: BLE001
                if time.time() > deadline:
                    unreadable.append(k)
                    break
                time.sleep(0.2)
    cl.close()
    return lost, unreadable

# --- one run --------------------------------------------------------------------------------

def one_run(a, root, index, kind):
    r = {"run": index, "kill": kind, "healed": False}
    run = Run(a, root, index)
    try:
        run.up_until_ready()
        load(run.ports[:6], a.keys)
        run.start_operator()
        t0 = time.time()
        run.start_writer(t0)
        time.sleep(1.0)
        run.scale(4, 1)
        r["scaled_at"] = round(time.time() - t0, 3)

        # Kill the first node whose own line shows an open slot of the kind asked for.
        cache, victim = {}, None
        deadline = time.time() + a.open_slot_timeout
        while victim is None and time.time() < deadline:
            for ordinal, p in enumerate(run.ports):
                line, ports = myself_line(p, cache)
                if line is None:
                    continue
                hit = ready_to_kill(kind, a.when, p, line, ports, cache)
                if hit:
                    pid = run.pid(ordinal)
                    if pid is None or pid not in run.our_redis_pids():
                        continue
                    os.kill(pid, signal.SIGKILL)
                    t_kill = time.time() - t0
                    victim = {"ordinal": ordinal, "port": p, "pid": pid, "id": line.split()[0],
                              "slot": hit[0], "keys_already_on_target": hit[1],
                              "open_slots": len(open_slots(line)), "t_kill": round(t_kill, 3)}
                    break
            time.sleep(a.poll_ms / 1000.0)
        for c in cache.values():
            c.close()
        if victim is None:
            r["error"] = f"no {kind} slot seen open within {a.open_slot_timeout} s"
            run.end_writer()
            return r
        r["victim"] = victim
        t_kill = victim["t_kill"]

        # Heal.
        why = "not checked"
        end = time.time() + a.heal_timeout
        while time.time() < end:
            why = healed(run)
            if why is None:
                break
            time.sleep(0.5)
        if why is None:
            r["healed"] = True
            r["heal_s"] = round(time.time() - t0 - t_kill, 1)
        else:
            r["not_healed_because"] = why

        acked = run.end_writer()
        r["acked"] = len(acked)
        # Verify, even when not healed (then unreadable keys are counted apart).
        verify_deadline = time.time() + (60 if r["healed"] else 20)
        items = [(b"p:%d" % i, b"v%d" % i) for i in range(a.keys)]
        lost_p, unread_p = read_all(run.ports, items, verify_deadline)
        by_i = {i: (port, t) for i, port, t in acked}
        items = [(b"w:%d" % i, b"%d" % i) for i in by_i]
        lost_w, unread_w = read_all(run.ports, items, verify_deadline + 20)
        r["keys_checked"] = a.keys + len(by_i)
        r["preloaded_lost"] = len(lost_p)
        r["preloaded_unreadable"] = len(unread_p)
        r["preloaded_lost_sample"] = [k.decode() for k in lost_p[:5]]
        window, killed_port = [], victim["port"]
        other = []
        for k in lost_w:
            i = int(k[2:])
            port, t = by_i[i]
            if port == killed_port and t_kill - a.async_window <= t <= t_kill + 0.05:
                window.append(i)
            else:
                other.append(i)
        r["acked_lost_async_window"] = len(window)
        r["acked_lost_other"] = len(other)
        r["acked_unreadable"] = len(unread_w)
        r["acked_lost_other_sample"] = [
            {"i": i, "port": by_i[i][0], "t_minus_kill": round(by_i[i][1] - t_kill, 3)} for i in other[:5]]
        if other:
            ports = {}
            for i in other:
                ports[by_i[i][0]] = ports.get(by_i[i][0], 0) + 1
            r["acked_lost_other_by_port"] = {str(p): n for p, n in sorted(ports.items())}
        return r
    except Exception as e:  # noqa: BLE001 - a run that breaks is reported, the others go on
        r["error"] = f"{type(e).__name__}: {e}"
        return r
    finally:
        if not r.get("healed") or r.get("preloaded_lost") or r.get("acked_lost_other") or r.get("error"):
            r["operator_log_tail"] = run.operator_log().splitlines()[-60:]
            if a.logs:
                keep = os.path.join(a.logs, f"run-{index}")
                os.makedirs(keep, exist_ok=True)
                for kept in ("operator.log", "trace.jsonl"):
                    if os.path.exists(os.path.join(run.dir, kept)):
                        shutil.copy(os.path.join(run.dir, kept), keep)
                with open(os.path.join(keep, "status.txt"), "w") as f:
                    f.write(run.status())
                for n in range(NODES):
                    src = os.path.join(run.state, f"node-{n}", "redis.log")
                    if os.path.exists(src):
                        shutil.copy(src, os.path.join(keep, f"redis-{n}.log"))
        run.close()

def failed(r):
    return (not r["healed"] or r.get("error") or r.get("preloaded_lost", 0) or r.get("preloaded_unreadable", 0)
            or r.get("acked_lost_other", 0) or r.get("acked_unreadable", 0))

def line(r):
    v = r.get("victim") or {}
    node = f"node-{v['ordinal']}:{v['port']}" if v else "-"
    heal = f"{r['heal_s']:.1f}" if r.get("healed") else "NOT HEALED"
    extra = ""
    if r.get("preloaded_unreadable") or r.get("acked_unreadable"):
        extra = (f"  (unreadable: {r.get('preloaded_unreadable', 0)} preloaded, "
                 f"{r.get('acked_unreadable', 0)} acked)")
    if r.get("error"):
        extra += f"  error: {r['error']}"
    return (f"{r['run']:>3} {r['kill']:<6} {node:<16} {v.get('slot', '-'):>5} {heal:>10} "
            f"{r.get('keys_checked', '-'):>9} {r.get('preloaded_lost', '-'):>9} "
            f"{r.get('acked_lost_async_window', '-'):>8} {r.get('acked_lost_other', '-'):>9}{extra}")

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--kill", choices=["source", "target", "both"], default="both")
    ap.add_argument("--keys", type=int, default=300_000)
    ap.add_argument("--batch", type=int, default=20, help="migrationBatchKeys")
    ap.add_argument("--binary", default="target/release/redis-operator")
    ap.add_argument("--base-port", type=int, default=17000)
    ap.add_argument("--heal-timeout", type=float, default=300)
    ap.add_argument("--node-timeout-ms", type=int, default=5000, help="clusterNodeTimeoutMs")
    ap.add_argument("--write-rate", type=float, default=2000, help="writer: at most this many SETs/s")
    ap.add_argument("--async-window", type=float, default=1.0,
                    help="s before the kill in which the killed node's acknowledgements may be lost")
    ap.add_argument("--when", choices=["first", "moved"], default="first",
                    help="kill at the first open slot seen, or once keys have moved: the target "
                         "holds keys (target), or holds keys of a slot the source migrates (source)")
    ap.add_argument("--poll-ms", type=float, default=5)
    ap.add_argument("--open-slot-timeout", type=float, default=180)
    ap.add_argument("--json", help="write the runs and the summary here")
    ap.add_argument("--logs", help="keep operator and redis logs of failed runs here")
    a = ap.parse_args()
    a.binary = os.path.abspath(a.binary)
    if a.logs:
        a.logs = os.path.abspath(a.logs)
    if not os.access(a.binary, os.X_OK):
        print(f"no executable {a.binary} (cargo build --release -p redis-operator)", file=sys.stderr)
        return 2
    if a.base_port + NODES - 1 + 10000 > 65535:
        print("--base-port too high: bus ports are port + 10000", file=sys.stderr)
        return 2
    for p in range(a.base_port, a.base_port + NODES):
        for q in (p, p + 10000):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", q)) == 0:
                    print(f"port {q} is in use: pick another --base-port", file=sys.stderr)
                    return 2

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # SIGINT too: a shell starts a background job with SIGINT ignored, and Python then keeps it so.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    root = tempfile.mkdtemp(prefix="rop-nodeloss-")
    runs = []
    interrupted = False
    print(f"keys {a.keys:,}, migrationBatchKeys {a.batch}, kill at {a.when}, node timeout {a.node_timeout_ms} ms, writer "
          f"<= {a.write_rate:.0f}/s, async window {a.async_window} s, ports {a.base_port}-{a.base_port + NODES - 1}")
    print("run kill   node              slot     heal s      keys  pre-lost  ack-win  ack-other")
    try:
        for i in range(1, a.runs + 1):
            kind = a.kill if a.kill != "both" else ("source" if i % 2 else "target")
            r = one_run(a, root, i, kind)
            runs.append(r)
            print(line(r), flush=True)
            if not r.get("healed") and r.get("not_healed_because"):
                print(f"      not healed after {a.heal_timeout:.0f} s: {r['not_healed_because']}", flush=True)
            if failed(r):
                seen = []
                for l in r.get("operator_log_tail", []):
                    if not (" WARN " in l or " ERROR " in l or l.startswith("[")):
                        continue  # progress and address lines say nothing of what went wrong
                    msg = l.split(" ", 1)[-1][:200] if l[:1].isdigit() else l[:200]  # folds repeats
                    if msg not in seen:
                        seen.append(msg)
                for msg in seen[-4:]:
                    print(f"      operator: {msg}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: everything started was stopped", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    bad = [r for r in runs if failed(r)]
    heals = sorted(r["heal_s"] for r in runs if r.get("healed"))
    summary = {
        "runs": len(runs), "failed_runs": len(bad),
        "not_healed": sum(1 for r in runs if not r.get("healed")),
        "runs_losing_preloaded_keys": sum(1 for r in runs if r.get("preloaded_lost")),
        "preloaded_lost_total": sum(r.get("preloaded_lost", 0) for r in runs),
        "acked_lost_async_window_total": sum(r.get("acked_lost_async_window", 0) for r in runs),
        "acked_lost_other_total": sum(r.get("acked_lost_other", 0) for r in runs),
        "heal_s_median": heals[len(heals) // 2] if heals else None,
        "heal_s_max": heals[-1] if heals else None,
        "interrupted": interrupted,
        "params": {k: v for k, v in vars(a).items() if k not in ("json",)},
    }
    print(f"summary: {len(runs)} runs, {len(bad)} failed; not healed {summary['not_healed']}; "
          f"runs losing preloaded keys {summary['runs_losing_preloaded_keys']} "
          f"({summary['preloaded_lost_total']} keys); acked writes lost: "
          f"{summary['acked_lost_async_window_total']} in the async window, "
          f"{summary['acked_lost_other_total']} other; heal s median {summary['heal_s_median']} "
          f"max {summary['heal_s_max']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "runs": runs}, f, indent=1)
    if interrupted:
        return 130
    return 1 if bad or not runs else 0

if __name__ == "__main__":
    sys.exit(main())
