#!/usr/bin/env python3
"""`GET /cluster/nodes` of a 200-node cluster: the operator's HTTP server against nginx serving
the same JSON body as a static file, under the same `wrk` load, in one run.

  python3 bench/http_api.py [--nodes 200] [--threads 2] [--connections 64] [--duration 10]
                            [--rounds 2]

The operator side is `controller/examples/serve_directory.rs`: the real router and server
(`controller::http::serve`) with a synthetic directory, so no redis-server runs. It writes the
exact body it answers; nginx serves that file. Both bind 127.0.0.1 only (ports 19080 and
19081); nginx runs from a temporary prefix with its own configuration (the system's nginx
service is never touched). Rounds alternate which server goes first. Prints requests/s and
p99 latency for both and their ratios. Needs `wrk` and `nginx` (Debian packages `wrk` and
`nginx-light` or `nginx`) and cargo; installs nothing, says what is missing.
"""
import argparse, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS, NGINX = 19080, 19081
PATH = "/cluster/nodes?clusterName=bench"


def find_nginx():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_port(port, proc, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def fetch(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{PATH}", timeout=5) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port, args):
    out = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
         f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, timeout=args.duration + 60)
    if out.returncode != 0:
        sys.exit(f"wrk failed: {out.stderr.strip()}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out.stdout, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    sockerr = re.search(r"Socket errors: (.*)", out.stdout)
    if not rps or not p99:
        sys.exit(f"could not read wrk's output:\n{out.stdout}")
    if errors or sockerr:
        print(f"  warning on :{port}: {(errors or sockerr).group(0)}")
    return float(rps.group(1)), to_ms(p99.group(1), p99.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if not 1 <= args.nodes <= 5000 or args.rounds < 1 or args.duration < 1:
        sys.exit("--nodes must be 1-5000, --rounds and --duration at least 1")

    nginx = find_nginx()
    missing = [name for name, ok in (("wrk", shutil.which("wrk")), ("nginx", nginx),
                                      ("cargo", shutil.which("cargo"))) if not ok]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (on Debian: apt-get install wrk nginx-light)")
    for port in (OURS, NGINX):
        if not port_free(port):
            sys.exit(f"127.0.0.1:{port} is in use; stop whatever listens there first")

    build = subprocess.run(["cargo", "build", "--release", "-q", "-p", "redis-operator-controller",
                            "--example", "serve_directory"], cwd=ROOT)
    if build.returncode != 0:
        sys.exit("building controller/examples/serve_directory.rs failed")
    server = os.path.join(ROOT, "target", "release", "examples", "serve_directory")

    tmp = tempfile.mkdtemp(prefix="rop-http-bench-")
    os.chmod(tmp, 0o755)  # nginx started as root reads the body as its unprivileged worker user
    procs = []
    try:
        body = os.path.join(tmp, "nodes.json")
        ours = subprocess.Popen([server, str(OURS), str(args.nodes), body],
                                stdout=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
        procs.append(ours)
        wait_port(OURS, ours, "serve_directory")

        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(tmp, d))
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            # nginx at its best for one static file: a worker per core, the file's descriptor
            # cached, sendfile, no access log, keep-alive as long as wrk's connections live
            # (hyper never closes an idle keep-alive connection on its own either).
            f.write(f"""daemon off;
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    open_file_cache max=16 inactive=60s;
    client_body_temp_path {tmp}/tmp/body;
    proxy_temp_path {tmp}/tmp/proxy;
    fastcgi_temp_path {tmp}/tmp/fastcgi;
    uwsgi_temp_path {tmp}/tmp/uwsgi;
    scgi_temp_path {tmp}/tmp/scgi;
    server {{
        listen 127.0.0.1:{NGINX};
        location = /cluster/nodes {{
            default_type application/json;
            alias {body};
        }}
    }}
}}
""")
        ng = subprocess.Popen([nginx, "-p", tmp, "-c", conf, "-e", f"{tmp}/logs/error.log"],
                              stderr=subprocess.DEVNULL)
        procs.append(ng)
        wait_port(NGINX, ng, "nginx")

        os.chmod(body, 0o644)
        a, b = fetch(OURS), fetch(NGINX)
        if a[0] != 200 or b[0] != 200 or a[2] != b[2]:
            sys.exit(f"the two servers answer differently: ours {a[0]} {len(a[2])} bytes, "
                     f"nginx {b[0]} {len(b[2])} bytes")
        print(f"{args.nodes} nodes, body {len(a[2])} bytes (identical on both); wrk -t{args.threads} "
              f"-c{args.connections} -d{args.duration}s, {args.rounds} round(s), order alternating")

        results = {"operator": [], "nginx": []}
        for r in range(args.rounds):
            order = [("operator", OURS), ("nginx", NGINX)]
            if r % 2:
                order.reverse()
            for name, port in order:
                rps, p99 = wrk(port, args)
                results[name].append((rps, p99))
                print(f"  round {r + 1}: {name:<8} {rps:>12,.0f} req/s   p99 {p99:8.3f} ms")

        def med(xs):
            xs = sorted(xs)
            return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

        o_rps, o_p99 = med([x[0] for x in results["operator"]]), med([x[1] for x in results["operator"]])
        n_rps, n_p99 = med([x[0] for x in results["nginx"]]), med([x[1] for x in results["nginx"]])
        print()
        print(f"| server | requests/s | p99 latency |")
        print(f"|---|---|---|")
        print(f"| redis-operator (hyper) | {o_rps:,.0f} | {o_p99:.3f} ms |")
        print(f"| nginx (static file) | {n_rps:,.0f} | {n_p99:.3f} ms |")
        print(f"| ratio operator/nginx | {o_rps / n_rps:.2f}x (target >= 1x) | "
              f"{o_p99 / n_p99:.2f}x (target <= 1x) |")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT if p is procs[0] else signal.SIGQUIT)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
