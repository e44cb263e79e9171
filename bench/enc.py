"""The encrypted transports section of bench/run (DNS over TLS and HTTPS), for bench.py.

  parse_h2load(path)      h2load's summary as the figures a dnsperf run gives.
  idle-tls PORT PID [--n N] [--alpn dot]   (a bench.py subcommand)
      opens N TLS connections to PORT (handshake done, no query), reads the
      summed VmRSS of PID's tree before and after, prints JSON with KiB per
      connection, and closes them.
  churn-tls PORT [--n N] [--per-conn K] [--resume] [--tls12]   (a bench.py subcommand)
      N DoT connections one after the other, K queries each (a name of the
      table, the answer read and its ID checked); --resume offers each new
      connection the session of the last (tickets); JSON with the share resumed.
  lines(rows, series, Line, ...)   the section's ratio lines.
"""
import json
import re
import resource
import socket
import ssl
import struct
import time


def parse_h2load(path):
    """h2load's figures as parse_dnsperf's keys: qps, sent (requests started),
    completed (2xx answers), lost (the rest), run_s, avg_ms, max_ms."""
    res = {"qps": None, "sent": None, "completed": None, "lost": None, "avg_ms": None,
           "max_ms": None, "run_s": None, "rcodes": {}, "samples": 0,
           "p50": None, "p99": None, "p999": None}
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    ok = None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", line)
            if m:
                res["run_s"] = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
                res["qps"] = float(m.group(3))
            m = re.match(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", line)
            if m:
                res["sent"] = int(m.group(2))
            m = re.match(r"status codes: (\d+) 2xx", line)
            if m:
                ok = int(m.group(1))
            m = re.match(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+"
                         r"([\d.]+)(us|ms|s)", line)
            if m:
                res["max_ms"] = float(m.group(3)) * units[m.group(4)]
                res["avg_ms"] = float(m.group(5)) * units[m.group(6)]
    if ok is not None and res["sent"] is not None:
        res["completed"] = ok
        res["lost"] = res["sent"] - ok
        # h2load's req/s counts every finished request; the answers are the 2xx ones.
        if res["run_s"]:
            res["qps"] = ok / res["run_s"]
    return res


def cmd_idle_tls(a, tree, status_kb):
    """Opens A.N idle TLS connections to A.PORT; RSS of A.PID's tree before and after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.n + 64
    if soft < want <= hard or (hard == resource.RLIM_INFINITY and soft < want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    ctx = client_context(a.alpn)

    def rss():
        return sum(status_kb(p, "VmRSS") for p in tree(a.pid))

    before = rss()
    conns, failed = [], 0
    t0 = time.monotonic()
    for _ in range(a.n):
        try:
            raw = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            conns.append(ctx.wrap_socket(raw))
        except OSError:
            failed += 1
    opened = time.monotonic() - t0
    time.sleep(0.5)  # the server's side of the last handshakes settles
    after = rss()
    # Still open at the end? A server that closed some (cap, idle timeout)
    # reads as EOF on a non-blocking peek.
    alive = 0
    for c in conns:
        try:
            c.setblocking(False)
            c.recv(1)
        except ssl.SSLWantReadError:
            alive += 1
        except OSError:
            pass
    for c in conns:
        try:
            c.close()
        except OSError:
            pass
    n = len(conns)
    print(json.dumps({
        "idle_conns": n, "idle_alive": alive, "idle_failed": failed,
        "idle_open_s": round(opened, 2), "rss_before_kb": before, "rss_idle_kb": after,
        "kb_per_conn": (after - before) / alive if alive else None,
    }))


def client_context(alpn, tls12=False):
    """A TLS client context that takes any certificate (the bench's self-signed one)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols([alpn])
    return ctx


def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("closed")
        out += chunk
    return out


def cmd_churn_tls(a, dns_query):
    """A.N DoT connections one after the other, A.PER_CONN queries each
    (DNS_QUERY: bench.py's query builder)."""
    ctx = client_context("dot", a.tls12)
    session, ok, resumed, failed, answers = None, 0, 0, 0, 0
    t0 = time.monotonic()
    for i in range(a.n):
        try:
            raw = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            # As stub resolvers do: without it, a TLS 1.2 resumption's query waits
            # behind the client's Finished for the server's delayed ACK.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s = ctx.wrap_socket(raw, session=session if a.resume else None)
            for k in range(a.per_conn):
                qid = (i * a.per_conn + k) & 0xFFFF
                q = dns_query(qid, f"host{(i * 7 + k) % 10000}.bench.test")
                s.sendall(struct.pack(">H", len(q)) + q)
                (n,) = struct.unpack(">H", read_exact(s, 2))
                answer = read_exact(s, n)
                if struct.unpack(">H", answer[:2])[0] == qid:
                    answers += 1
            resumed += 1 if s.session_reused else 0
            # TLS 1.3 tickets come after the handshake: read by now, with the answers.
            if a.resume and s.session is not None:
                session = s.session
            s.close()
            ok += 1
        except OSError:
            failed += 1
    run = time.monotonic() - t0
    print(json.dumps({
        "conns": a.n, "conns_ok": ok, "conns_failed": failed, "answers": answers,
        "queries": a.n * a.per_conn, "resumed_pct": 100.0 * resumed / ok if ok else None,
        "run_s": run, "conns_per_s": ok / run if run else None,
    }))


def lines(rows, series, Line, ge, le):
    """The section's comparison lines."""
    out = []

    def add(label, scenario, ours, theirs, mode, metric, kind, target, judge,
            their_scenario=None):
        o = series(rows, "enc", scenario, ours, mode, metric)
        t = series(rows, "enc", their_scenario or scenario, theirs, mode, metric) if theirs else {}
        if o:
            out.append(Line(label, o, t, metric, kind, target, judge))

    vs = "LS vs dnsdist"
    add(f"DoT, long-lived connections: {vs}: max QPS", "dot", "dnslb-ls", "dnsdist", "max",
        "qps", "qps", "ratio >= 1.25", ge(1.25))
    add(f"DoT: {vs}: CPU per query @ fixed rate", "dot", "dnslb-ls", "dnsdist", "fixed",
        "cpu_us", "us", "ratio <= 1.00", le(1.0))
    add(f"DoT: {vs}: p99 @ fixed rate", "dot", "dnslb-ls", "dnsdist", "fixed", "p99", "ms",
        "(info)", None)
    add("DoT: dnsperf's own CPU / its run time, at full speed (LS; 1.00 = the load "
        "generator is the limit)", "dot", "dnslb-ls", "dnsdist", "max", "loadgen_busy",
        "ratio", "(info)", None)
    add(f"DoH (h2load -c 4 -m 50, POST): {vs}: max QPS", "doh", "dnslb-ls", "dnsdist", "max",
        "qps", "qps", "ratio >= 1.25", ge(1.25))
    add(f"DoH: {vs}: CPU per query at full speed", "doh", "dnslb-ls", "dnsdist", "max",
        "cpu_us", "us", "(info)", None)
    add("DoH / DoT of the LS: max QPS (h2load vs dnsperf)", "doh", "dnslb-ls", "dnslb-ls",
        "max", "qps", "qps", "ratio >= 0.70", ge(0.7), their_scenario="dot")
    for k in ("1", "10"):
        for how in ("full", "resumed"):
            sc = f"churn-{k}-{how}"
            what = f"DoT churn, {k} quer{'ies' if k != '1' else 'y'} per connection, {how} handshakes"
            add(f"{what}: {vs}: CPU per connection", sc, "dnslb-ls", "dnsdist", "churn",
                "cpu_per_conn_us", "us", "ratio <= 1.00" if how == "full" else "(info)",
                le(1.0) if how == "full" else None)
            add(f"{what}: share resumed", sc, "dnslb-ls", "dnsdist", "churn", "resumed_pct",
                "pct", "(info)", None)
    add(f"1,000 idle TLS connections: {vs}: memory per connection (KiB)", "idle",
        "dnslb-ls", "dnsdist", "idle", "kb_per_conn", "kib", "ratio <= 1.00", le(1.0))
    return out


TITLES = {
    ("dot", "max"): "DNS over TLS (dnsperf -m dot, 4 connections), LS vs dnsdist, full speed",
    ("dot", "fixed"): "DNS over TLS (dnsperf -m dot, 4 connections), LS vs dnsdist, fixed rate",
    ("doh", "max"): "DNS over HTTPS (h2load -c 4 -m 50, POST), LS vs dnsdist, full speed",
}


def derive(r):
    """CPU time per connection and per query of a churn record."""
    ticks, hz = r.get("cpu_ticks"), r.get("clk_tck")
    if r.get("mode") == "churn" and isinstance(ticks, int) and hz:
        if r.get("conns_ok"):
            r["cpu_per_conn_us"] = ticks * 1e6 / hz / r["conns_ok"]
        if r.get("answers"):
            r["cpu_us"] = ticks * 1e6 / hz / r["answers"]
    return r


def churn_table(by_scenario):
    """One row per contender and scenario of the churn part (one round)."""
    head = ["scenario", "contender", "connections", "answers", "resumed", "conns/s",
            "CPU per connection", "CPU per query"]
    body = []
    for sc, by_c in sorted(by_scenario.items()):
        for c, rs in by_c.items():
            r = sorted(rs, key=lambda x: x["round"])[-1]
            per_conn, per_q = r.get("cpu_per_conn_us"), r.get("cpu_us")
            body.append([sc, c, str(r.get("conns_ok")), str(r.get("answers")),
                         f"{r.get('resumed_pct') or 0:.1f} %",
                         f"{r.get('conns_per_s') or 0:,.0f}",
                         "n/a" if per_conn is None else f"{per_conn:.1f} µs",
                         "n/a" if per_q is None else f"{per_q:.1f} µs"])
    return head, body


def idle_table(by_contender):
    """One row per contender of the idle-connections part (one round)."""
    head = ["contender", "connections", "still open", "opened in", "RSS before", "RSS idle",
            "KiB per connection"]
    body = []
    for c, rs in by_contender.items():
        r = sorted(rs, key=lambda x: x["round"])[-1]
        per = r.get("kb_per_conn")
        body.append([c, str(r.get("idle_conns")), str(r.get("idle_alive")),
                     f"{r.get('idle_open_s')} s", f"{(r.get('rss_before_kb') or 0) / 1024:.1f} MiB",
                     f"{(r.get('rss_idle_kb') or 0) / 1024:.1f} MiB",
                     "n/a" if per is None else f"{per:.1f}"])
    return head, body
