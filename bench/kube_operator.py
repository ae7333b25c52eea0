#!/usr/bin/env python3
"""The Kubernetes operator's figures (issue 10), on this machine, beside local mode:

  1. time from `kubectl apply` of a 3 masters x 1 replica RedisCluster to its Ready condition,
     with `redis-operator run` against kube-sandbox (every pod a real redis-server), beside the
     time `redis-operator local up --until-ready` takes for the same cluster (the peer);
  2. the operator's resident memory (VmRSS) idle with 1 cluster and with 20 clusters
     (3 masters x 0 replicas each, so 20 clusters stay within a 2-core machine).

Usage: bench/kube_operator.py [--runs 3] [--bin target/release] [--clusters 20] [--json FILE]
Not run in CI. Needs kubectl in target/tools/bin (scripts/kube-tools.sh) and redis-server.
Everything it starts is stopped on exit; the sandbox binds only loopback addresses.
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBECTL = os.path.join(ROOT, "target", "tools", "bin", "kubectl")
procs = []


def spawn(args, log, env=None):
    p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    procs.append(p)
    return p


def stop_all():
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
    procs.clear()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def kubectl(env, *args, stdin=None):
    return subprocess.run([KUBECTL, *args], env=env, input=stdin, capture_output=True, text=True, check=True).stdout


def manifest(name, masters, replicas, base):
    return (f"apiVersion: redis.redis/v1beta1\nkind: RedisCluster\nmetadata:\n  name: {name}\n"
            f"  namespace: bench\nspec:\n  masters: {masters}\n  replicas: {replicas}\n  basePort: {base}\n")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def sandbox(bins, tmp):
    kc = os.path.join(tmp, "kubeconfig")
    spawn([os.path.join(bins, "kube-sandbox"), "up", "--kubeconfig", kc, "--nodes", "3"], os.path.join(tmp, "sandbox.log"))
    deadline = time.time() + 30
    while not os.path.exists(kc):
        if time.time() > deadline:
            sys.exit("kube-sandbox did not start")
        time.sleep(0.1)
    env = dict(os.environ, KUBECONFIG=kc)
    crd = subprocess.run([os.path.join(bins, "redis-operator"), "crd"], capture_output=True, text=True, check=True).stdout
    kubectl(env, "apply", "-f", "-", stdin=crd)
    kubectl(env, "create", "namespace", "bench")
    return env


def operator(bins, tmp, env):
    port = free_port()
    p = spawn([os.path.join(bins, "redis-operator"), "run", "--no-leader-election", "--listen", f"127.0.0.1:{port}"],
              os.path.join(tmp, "operator.log"), env=dict(env, RUST_LOG="warn"))
    return p


def kube_ready_time(bins):
    tmp = tempfile.mkdtemp(prefix="bench-kube-")
    try:
        env = sandbox(bins, tmp)
        operator(bins, tmp, env)
        time.sleep(2)  # caches synced
        start = time.time()
        kubectl(env, "apply", "-f", "-", stdin=manifest("ready", 3, 1, 16000))
        kubectl(env, "wait", "-n", "bench", "rdc/ready", "--for=condition=Ready", "--timeout=300s")
        return time.time() - start
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def local_ready_time(bins):
    tmp = tempfile.mkdtemp(prefix="bench-local-")
    try:
        path = os.path.join(tmp, "c.yaml")
        with open(path, "w") as f:
            f.write(manifest("ready", 3, 1, 16100).replace("  namespace: bench\n", ""))
        start = time.time()
        subprocess.run([os.path.join(bins, "redis-operator"), "local", "up", "-f", path, "--until-ready",
                        "--listen", "off", "--dir", os.path.join(tmp, "state")], check=True, capture_output=True)
        took = time.time() - start
        subprocess.run([os.path.join(bins, "redis-operator"), "local", "down", "--name", "ready",
                        "--dir", os.path.join(tmp, "state"), "--purge"], capture_output=True)
        return took
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def idle_rss(bins, clusters):
    tmp = tempfile.mkdtemp(prefix="bench-rss-")
    try:
        env = sandbox(bins, tmp)
        op = operator(bins, tmp, env)
        # basePort 10000 + 10 i: client, bus (+10000) and exporter (+20000) ports of the
        # clusters never overlap, or the later clusters would be Invalid.
        for i in range(clusters):
            kubectl(env, "apply", "-f", "-", stdin=manifest(f"c{i}", 3, 0, 10000 + 10 * i))
        for i in range(clusters):
            kubectl(env, "wait", "-n", "bench", f"rdc/c{i}", "--for=condition=Ready", "--timeout=600s")
        time.sleep(10)  # idle: every cluster ready, passes every 2 s
        samples = []
        for _ in range(5):
            samples.append(rss_kib(op.pid))
            time.sleep(1)
        return max(samples)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--clusters", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(1)))
    try:
        kube = [kube_ready_time(a.bin) for _ in range(a.runs)]
        local = [local_ready_time(a.bin) for _ in range(a.runs)]
        rss1 = idle_rss(a.bin, 1)
        rssn = idle_rss(a.bin, a.clusters)
    finally:
        stop_all()
    out = {
        "apply_to_ready_s": kube, "local_up_until_ready_s": local,
        "ratio_median": statistics.median(kube) / statistics.median(local),
        "rss_kib_1_cluster": rss1, f"rss_kib_{a.clusters}_clusters": rssn,
    }
    print(f"3x1 apply -> Ready on kube-sandbox: median {statistics.median(kube):.2f} s {['%.2f' % t for t in kube]}")
    print(f"3x1 local up --until-ready (peer):  median {statistics.median(local):.2f} s {['%.2f' % t for t in local]}")
    print(f"ratio kube/local: {out['ratio_median']:.2f}")
    print(f"operator RSS idle: 1 cluster {rss1 / 1024:.1f} MiB, {a.clusters} clusters {rssn / 1024:.1f} MiB")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
