"""The service-answer section of bench/run (issue 38's benchmarks), for bench.py.

  gslb-gen DIR --ep-port P --big-services N --big-live L ...   (a bench.py subcommand)
      DIR/small/  one zone gslb.test: `www` a weighted service of 4 endpoints
                  (127.0.38.1-4, weights 1-4, tcp checks on P), `all` the same 4
                  endpoints answered all at once (the kill part), `static` a plain
                  A record; as a dnslb TS config, a gdnsd config (weighted +
                  multifo over tcp_connect) and a PowerDNS one (bind backend,
                  LUA records: pickwrandom, ifportup)
      DIR/big/    zone big.test: N services s0..s(N-1) of 4 endpoints each on
                  127.100.x.y (4N addresses), select all, tcp checks on P; the first
                  L services' endpoints listen (DIR/big/live.txt), the others
                  refuse; as a TS config (checks at --interval-ms, at gdnsd's
                  interval, and "none") and a gdnsd config (multifo, tcp_connect)
      DIR/*.txt   dnsperf query files
  gslb-listen PORT ADDR... | --file F    TCP listeners that accept and close
  gslb-checks URL    the checks a TS made so far (its /metrics), as JSON
  gslb-drop NAME=PORT:QNAME... --addr A --since T [--back] [--limit S]
      seconds from T until every server's answer to QNAME A leaves out A
      (--back: holds A again), polled every 20 ms, as JSON
  lines(rows, series, Line, ge, le)   the section's ratio lines.
  TITLES, table(...)                  its detail tables.
"""
import json
import os
import random
import resource
import selectors
import socket
import time
import urllib.request

ZONE = "gslb.test"
BIG = "big.test"
# The 4 endpoints of the small zone and their weights (1..4).
SMALL_EPS = [f"127.0.38.{i}" for i in range(1, 5)]
WEIGHTS = [1, 2, 3, 4]
SOA = "@ 300 IN SOA ns1 hostmaster 1 7200 1800 259200 900\n@ 300 IN NS ns1\nns1 300 IN A 127.0.0.1\n"


def big_addr(k):
    """The k-th endpoint of the big zone: 127.100.0.1 onwards, no .0 or .255."""
    return f"127.{100 + k // 62500}.{(k // 250) % 250 + 1}.{k % 250 + 1}"


def ts_check(port, interval_ms, timeout_ms, rise, fall):
    return (f'{{ kind = "tcp", port = {port}, interval_ms = {interval_ms}, '
            f'timeout_ms = {timeout_ms}, rise = {rise}, fall = {fall} }}')


def ts_head(name, zone_file, metrics=False):
    return (f'[[ts]]\nname = "{name}"\nlisten = "127.0.0.1:@PORT@"\nzones = ["{zone_file}"]\n'
            "workers = 1\n" + ('metrics = "127.0.0.1:@MPORT@"\n' if metrics else ""))


def gdnsd_head(run, state, monitors):
    return ("options => {\n  listen => [ 127.0.0.1:@PORT@ ]\n  udp_threads => 1\n"
            f"  tcp_threads => 1\n  run_dir => {run}\n  state_dir => {state}\n"
            "  zones_default_ttl => 30\n}\nservice_types => {\n" + monitors + "}\n")


def gdnsd_monitor(name, port, interval_s, rise, fall):
    # gdnsd's timeout is whole seconds, at least 1 and below the interval.
    return (f"  {name} => {{\n    plugin => tcp_connect\n    port => {port}\n"
            f"    up_thresh => {rise}\n    ok_thresh => 1\n    down_thresh => {fall}\n"
            f"    interval => {interval_s}\n    timeout => 1\n  }}\n")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def cmd_gen(a):
    d = os.path.abspath(a.dir)
    # --- small: the weighted name, the kill name, a static name
    s = os.path.join(d, "small")
    eps = ", ".join(f'{{ addr = "{e}", weight = {w} }}' for e, w in zip(SMALL_EPS, WEIGHTS))
    check = ts_check(a.ep_port, a.interval_ms, a.timeout_ms, a.rise, a.fall)
    write(os.path.join(s, "ts", f"{ZONE}.zone"),
          f"$ORIGIN {ZONE}.\n$TTL 300\n{SOA}static 30 IN A 127.0.38.1\n")
    write(os.path.join(s, "ts", "ts.toml"),
          ts_head("gslb", os.path.join(s, "ts", f"{ZONE}.zone"))
          + f'\n[[ts.service]]\nname = "www.{ZONE}"\nttl = 30\nselect = "weighted"\npick = 1\n'
          f"check = {check}\nendpoint = [ {eps} ]\n"
          f'\n[[ts.service]]\nname = "all.{ZONE}"\nttl = 30\nselect = "all"\n'
          f"check = {check}\nendpoint = [ {eps} ]\n")
    g = os.path.join(s, "gdnsd")
    weighted = "".join(f"      e{i} => [ {e}, {w} ]\n"
                       for i, (e, w) in enumerate(zip(SMALL_EPS, WEIGHTS)))
    multifo = "".join(f"      e{i} => {e}\n" for i, e in enumerate(SMALL_EPS))
    write(os.path.join(g, "config"),
          gdnsd_head(os.path.join(g, "run"), os.path.join(g, "state"),
                     gdnsd_monitor("tcpchk", a.ep_port, a.gdnsd_interval, a.rise, a.fall))
          + "plugins => {\n  weighted => {\n    service_types => tcpchk\n    multi => false\n"
          f"    www => {{\n{weighted}    }}\n  }}\n"
          "  multifo => {\n    service_types => tcpchk\n"
          f"    all => {{\n{multifo}    }}\n  }}\n}}\n")
    write(os.path.join(g, "zones", ZONE),
          f"{SOA}static 30 A 127.0.38.1\nwww 30 DYNA weighted!www\nall 30 DYNA multifo!all\n")
    p = os.path.join(s, "pdns")
    pick = ", ".join(f"{{{w}, '{e}'}}" for e, w in zip(SMALL_EPS, WEIGHTS))
    up = ", ".join(f"'{e}'" for e in SMALL_EPS)
    write(os.path.join(p, f"{ZONE}.zone"),
          f"$ORIGIN {ZONE}.\n{SOA}static 30 IN A 127.0.38.1\n"
          f'www 30 IN LUA A "pickwrandom({{{pick}}})"\n'
          f"all 30 IN LUA A \"ifportup({a.ep_port}, {{{up}}}, "
          f"{{selector='all', timeout={max(1, a.timeout_ms // 1000)}}})\"\n")
    write(os.path.join(p, "named.conf"),
          f'options {{ directory "{p}"; }};\n'
          f'zone "{ZONE}" {{ type master; file "{p}/{ZONE}.zone"; }};\n')
    # The kit's settings (tests/integration/kit/pdns.rs): no packet or query
    # cache, so that every answer runs its Lua; one receiver, one distributor.
    write(os.path.join(p, "pdns.conf"),
          f"launch=bind\nbind-config={p}/named.conf\nlocal-address=127.0.0.1\n"
          f"local-port=@PORT@\nsocket-dir={p}\nenable-lua-records=yes\n"
          f"lua-health-checks-interval={max(1, a.interval_ms // 1000)}\n"
          "cache-ttl=0\nquery-cache-ttl=0\nnegquery-cache-ttl=0\n"
          "receiver-threads=1\ndistributor-threads=1\nsecurity-poll-suffix=\n"
          "daemon=no\nguardian=no\ndisable-syslog=yes\nwrite-pid=no\nloglevel=4\n")
    write(os.path.join(d, "www.txt"), f"www.{ZONE} A\n")
    write(os.path.join(d, "static.txt"), f"static.{ZONE} A\n")

    # --- big: N services x 4 endpoints
    b = os.path.join(d, "big")
    n = a.big_services
    zone = os.path.join(b, "ts", f"{BIG}.zone")
    write(zone, f"$ORIGIN {BIG}.\n$TTL 300\n{SOA}")
    big_check = ts_check(a.ep_port, a.interval_ms, a.timeout_ms, a.rise, a.fall)
    # The same at gdnsd's interval: the checks of both, one for one.
    slow_check = ts_check(a.ep_port, 1000 * a.gdnsd_interval, a.timeout_ms, a.rise, a.fall)
    for name, chk in (("ts.toml", big_check), ("ts-nocheck.toml", '"none"'),
                      ("ts-slow.toml", slow_check)):
        with open(os.path.join(b, "ts", name), "w") as f:
            f.write(ts_head("big", zone, metrics=True))
            for i in range(n):
                eps = ", ".join(f'{{ addr = "{big_addr(4 * i + j)}" }}' for j in range(4))
                f.write(f'\n[[ts.service]]\nname = "s{i}.{BIG}"\nselect = "all"\n'
                        f"check = {chk}\nendpoint = [ {eps} ]\n")
    g = os.path.join(b, "gdnsd")
    os.makedirs(g, exist_ok=True)
    with open(os.path.join(g, "config"), "w") as f:
        f.write(gdnsd_head(os.path.join(g, "run"), os.path.join(g, "state"),
                           gdnsd_monitor("tcpchk", a.ep_port, a.gdnsd_interval, a.rise, a.fall)))
        f.write("plugins => {\n  multifo => {\n    service_types => tcpchk\n")
        for i in range(n):
            f.write(f"    s{i} => {{ " + " ".join(f"e{j} => {big_addr(4 * i + j)}" for j in range(4))
                    + " }\n")
        f.write("  }\n}\n")
    os.makedirs(os.path.join(g, "zones"), exist_ok=True)
    with open(os.path.join(g, "zones", BIG), "w") as f:
        f.write(SOA)
        for i in range(n):
            f.write(f"s{i} 30 DYNA multifo!s{i}\n")
    with open(os.path.join(b, "live.txt"), "w") as f:
        for k in range(4 * min(a.big_live, n)):
            f.write(big_addr(k) + "\n")
    names = [f"s{i}.{BIG} A\n" for i in range(n)]
    random.Random(38).shuffle(names)
    with open(os.path.join(d, "big.txt"), "w") as f:
        f.writelines(names)


def cmd_listen(a):
    """Listeners on ADDR:PORT that accept a connection and close it at once,
    until killed (a killed listener: its address refuses connections)."""
    addrs = list(a.addrs)
    if a.file:
        with open(a.file) as f:
            addrs += [x.strip() for x in f if x.strip()]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = len(addrs) + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    sel = selectors.DefaultSelector()
    for addr in addrs:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, a.port))
        s.listen(512)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print(f"listening on {len(addrs)} address(es), port {a.port}", flush=True)
    while True:
        for key, _ in sel.select():
            try:
                c, _ = key.fileobj.accept()
                c.close()
            except OSError:
                pass


def cmd_drop(a, dns_query, dns_answer):
    """Polls each server's answer to its name (A) every 20 ms from --since (a
    time.time() value) until it leaves out --addr (with --back: holds it);
    a SERVFAIL, an empty answer or silence does not count."""
    servers = {}
    for spec in a.servers:
        name, rest = spec.split("=", 1)
        port, qname = rest.split(":", 1)
        servers[name] = (int(port), qname)
    socks = {}
    for name in servers:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        socks[name] = s
    out = {name: None for name in servers}
    qid = random.randrange(65536)
    while time.time() - a.since < a.limit and any(v is None for v in out.values()):
        for name, (port, qname) in servers.items():
            if out[name] is not None:
                continue
            qid = (qid + 1) & 0xFFFF
            try:
                socks[name].sendto(dns_query(qid, qname), ("127.0.0.1", port))
                while True:
                    buf = socks[name].recv(4096)
                    ans = dns_answer(buf)
                    if ans and ans[0] == qid:
                        break
            except OSError:
                continue
            _, rcode, addrs = ans[0], ans[1], ans[2]
            if rcode != 0 or not addrs:
                continue
            if (a.addr in addrs) == a.back:
                out[name] = time.time() - a.since
        time.sleep(0.02)
    print(json.dumps(out))
    # One file per server for bench.py note (--extra): {"drop_s": seconds or null}.
    if a.prefix:
        key = "back_s" if a.back else "drop_s"
        for name, v in out.items():
            with open(f"{a.prefix}-{name}.json", "w") as f:
                json.dump({key: v}, f)


def cmd_checks(a):
    """The TS's checks so far (every dnslb_ts_endpoint_checks_total summed) and
    when they were read, as JSON; {} when /metrics does not answer."""
    t0 = time.time()
    try:
        with urllib.request.urlopen(a.url, timeout=30) as f:
            text = f.read().decode()
    except (OSError, ValueError):
        print("{}")
        return
    n = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("dnslb_ts_endpoint_checks_total{"))
    print(json.dumps({"checks": n, "t0": t0, "t1": time.time()}))


def add_parser(sub, dns_query, dns_answer):
    g = sub.add_parser("gslb-checks")
    g.add_argument("url")
    g.set_defaults(f=cmd_checks)
    g = sub.add_parser("gslb-gen")
    g.add_argument("dir")
    g.add_argument("--ep-port", type=int, required=True)
    g.add_argument("--big-services", type=int, default=10000)
    g.add_argument("--big-live", type=int, default=250)
    g.add_argument("--interval-ms", type=int, default=1000)
    g.add_argument("--timeout-ms", type=int, default=500)
    g.add_argument("--gdnsd-interval", type=int, default=2)
    g.add_argument("--rise", type=int, default=2)
    g.add_argument("--fall", type=int, default=2)
    g.set_defaults(f=cmd_gen)
    g = sub.add_parser("gslb-listen")
    g.add_argument("port", type=int)
    g.add_argument("addrs", nargs="*")
    g.add_argument("--file")
    g.set_defaults(f=cmd_listen)
    g = sub.add_parser("gslb-drop")
    g.add_argument("servers", nargs="+", help="NAME=PORT:QNAME")
    g.add_argument("--addr", required=True)
    g.add_argument("--since", type=float, required=True)
    g.add_argument("--limit", type=float, default=30.0)
    g.add_argument("--back", action="store_true")
    g.add_argument("--prefix", help="also writes PREFIX-NAME.json for each server")
    g.set_defaults(f=lambda a: cmd_drop(a, dns_query, dns_answer))


def lines(rows, series, Line, ge, le):
    """The section's comparison lines."""
    out = []

    def add(label, scenario, ours, theirs, mode, metric, kind, target, judge):
        o = series(rows, "gslb", scenario, ours, mode, metric)
        t = series(rows, "gslb", scenario, theirs, mode, metric) if theirs else {}
        if o:
            out.append(Line(label, o, t, metric, kind, target, judge))

    w = "weighted service, 4 live endpoints"
    add(f"{w}: TS vs gdnsd weighted: max QPS", "weighted", "dnslb-ts", "gdnsd", "max", "qps",
        "qps", "ratio >= 1.00", ge(1.0))
    add(f"{w}: TS vs PowerDNS pickwrandom: max QPS", "weighted", "dnslb-ts", "pdns", "max",
        "qps", "qps", "ratio >= 3.00", ge(3.0))
    add(f"{w}: TS service / TS static A: max QPS", "weighted", "dnslb-ts", "dnslb-ts-static",
        "max", "qps", "qps", "ratio >= 0.90", ge(0.9))
    add(f"{w}: TS vs gdnsd: CPU per query @ fixed rate", "weighted", "dnslb-ts", "gdnsd",
        "fixed", "cpu_us", "us", "(info)", None)
    add(f"{w}: TS vs PowerDNS: CPU per query @ fixed rate", "weighted", "dnslb-ts", "pdns",
        "fixed", "cpu_us", "us", "(info)", None)
    add(f"{w}: TS service / TS static A: CPU per query @ fixed rate", "weighted", "dnslb-ts",
        "dnslb-ts-static", "fixed", "cpu_us", "us", "(info)", None)
    add(f"{w}: gdnsd weighted / gdnsd static A: max QPS", "weighted", "gdnsd", "gdnsd-static",
        "max", "qps", "qps", "(info)", None)
    add(f"{w}: PowerDNS pickwrandom / PowerDNS static A: max QPS", "weighted", "pdns",
        "pdns-static", "max", "qps", "qps", "(info)", None)
    add(f"{w}: TS static A vs gdnsd static A: max QPS", "weighted", "dnslb-ts-static",
        "gdnsd-static", "max", "qps", "qps", "(info)", None)
    n = next((r["services"] for r in rows
              if r.get("section") == "gslb" and isinstance(r.get("services"), int)), None)
    big = f"{n:,} services x 4 endpoints, tcp checks" if n else "services x 4 endpoints, tcp checks"
    add(f"{big}: checker CPU, TS (1 s) vs gdnsd (2 s, its least): CPU per second",
        "checks", "dnslb-ts", "gdnsd", "idle", "cpu_pct", "pct", "(info)", None)
    add(f"{big}: checker CPU per check, TS vs gdnsd", "checks", "dnslb-ts", "gdnsd", "idle",
        "cpu_us_check", "us", "ratio <= 1.00", le(1.0))
    add(f"{big}: checker CPU, both every 2 s (the same monitors): TS vs gdnsd", "checks",
        "dnslb-ts-2s", "gdnsd", "idle", "cpu_pct", "pct", "ratio <= 1.00", le(1.0))
    add(f"{big}: TS checks running / checks off: answers' p99 @ fixed rate", "checks",
        "dnslb-ts", "dnslb-ts-nocheck", "fixed", "p99", "ms", "(info: within noise)", None)
    add(f"{big}: TS vs gdnsd, checks running: answers' p99 @ fixed rate", "checks",
        "dnslb-ts", "gdnsd", "fixed", "p99", "ms", "(info)", None)
    kill = "an endpoint killed: time until absent from answers"
    add(f"{kill}: TS vs gdnsd", "kill", "dnslb-ts", "gdnsd", "kill", "drop_s", "s", "(info)",
        None)
    add(f"{kill}: TS vs PowerDNS", "kill", "dnslb-ts", "pdns", "kill", "drop_s", "s", "(info)",
        None)
    return out


TITLES = {
    ("weighted", "max"): ("Weighted service name (4 live endpoints): TS, gdnsd weighted, "
                          "PowerDNS pickwrandom, the TS's static A: full speed"),
    ("weighted", "fixed"): ("Weighted service name (4 live endpoints): TS, gdnsd weighted, "
                            "PowerDNS pickwrandom, the TS's static A: fixed rate"),
    ("checks", "fixed"): ("Part b's services x 4 endpoints: answers at a fixed rate, "
                          "checks running (TS, gdnsd) and off (dnslb-ts-nocheck)"),
}


def table(section_rows, fmt, med):
    """The detail tables of the idle and kill modes: (title, head, body)."""
    mode = section_rows[0][1][0].get("mode") if section_rows else None
    body = []
    if mode == "idle":
        head = ["contender", "check interval", "endpoints", "checks/s", "CPU % of a core (median)",
                "CPU per check", "by round", "RSS", "ready after (median)"]
        for c, rs in section_rows:
            rs = sorted(rs, key=lambda r: r["round"])
            rate = fmt(med([r.get("checks_per_s") for r in rs]), "int")
            body.append([c, fmt(rs[-1].get("interval_s"), "s"), fmt(rs[-1].get("endpoints"), "int"),
                         f"{rate} ({rs[-1].get('checks_from', 'n/a')})",
                         fmt(med([r.get("cpu_pct") for r in rs]), "pct"),
                         fmt(med([r.get("cpu_us_check") for r in rs]), "us"),
                         ", ".join(fmt(r.get("cpu_pct"), "pct") for r in rs),
                         fmt(med([r.get("rss_kb") for r in rs]), "mib"),
                         fmt(med([r.get("ready_s") for r in rs]), "s")])
        n = section_rows[0][1][0].get("services")
        n = f"{n:,}" if isinstance(n, int) else "N"
        return (f"{n} services x 4 endpoints (a fortieth listening, the rest refusing), "
                "tcp checks, no queries: the checker's CPU", head, body)
    head = ["contender", "median", "each kill", "not dropped within the limit"]
    for c, rs in section_rows:
        rs = sorted(rs, key=lambda r: r["round"])
        vals = [r.get("drop_s") for r in rs]
        body.append([c, fmt(med(vals), "s"), ", ".join(fmt(v, "s") for v in vals),
                     str(sum(1 for v in vals if v is None))])
    return ("An endpoint killed (its listener stopped: connections refused): seconds until "
            "the server's answers leave it out (polled every 20 ms)", head, body)


def derive(r):
    """An idle record: CPU share of a core and per check. The TS's checks a
    second are counted (its /metrics read before and after: checks_before,
    checks_after); gdnsd's, which it does not count, are its config's
    (endpoints / interval)."""
    if r.get("mode") != "idle":
        return r
    ticks, hz, secs = r.get("cpu_ticks"), r.get("clk_tck"), r.get("idle_s")
    b, a = r.get("checks_before") or {}, r.get("checks_after") or {}
    if "checks" in b and "checks" in a and a["t1"] > b["t0"]:
        r["checks_per_s"] = (a["checks"] - b["checks"]) / ((a["t0"] + a["t1"]) / 2
                                                          - (b["t0"] + b["t1"]) / 2)
        r["checks_from"] = "counted"
    elif r.get("endpoints") and r.get("interval_s"):
        r["checks_per_s"] = r["endpoints"] / r["interval_s"]
        r["checks_from"] = "config"
    if isinstance(ticks, int) and hz and secs:
        cpu_s = ticks / hz
        r["cpu_pct"] = 100.0 * cpu_s / secs
        if r.get("checks_per_s"):
            r["cpu_us_check"] = cpu_s * 1e6 / (r["checks_per_s"] * secs)
    return r
