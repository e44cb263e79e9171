#!/usr/bin/env python3
"""bench/quic's own client, where no packaged load generator fits (the DoQ,
DoT and DoH loads are examples/qload).

  quic_client.py udp-latency HOST PORT QPS SECS QUERIES
      Paced UDP queries (QPS a second for SECS seconds, the names of the
      dnsperf-format file QUERIES in turn), each timed from its send to its
      answer; prints "sent N answered N p50_us X p90_us X p99_us X".
"""
import socket
import struct
import sys
import time


def wire(name, qid=0):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">6H", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack(">2H", 1, 1)


def udp_latency(host, port, qps, secs, queries):
    names = [l.split()[0] for l in open(queries) if l.strip()]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, int(port)))
    s.setblocking(False)
    qps, secs = int(qps), float(secs)
    sent_at = {}
    lat = []
    start = time.perf_counter()
    n = 0
    end = start + secs
    while True:
        now = time.perf_counter()
        if now >= end + 0.5:
            break
        due = start + n / qps
        if now >= due and now < end:
            qid = n & 0xFFFF
            sent_at[qid] = now
            s.send(wire(names[n % len(names)], qid))
            n += 1
            continue
        try:
            while True:
                m = s.recv(4096)
                t = time.perf_counter()
                qid = struct.unpack(">H", m[:2])[0]
                t0 = sent_at.pop(qid, None)
                if t0 is not None:
                    lat.append(t - t0)
        except BlockingIOError:
            pass
    lat.sort()

    def pct(p):
        return int(lat[min(len(lat) - 1, int(len(lat) * p))] * 1e6) if lat else -1

    print(f"sent {n} answered {len(lat)} p50_us {pct(0.5)} p90_us {pct(0.9)} p99_us {pct(0.99)}")


def main():
    if len(sys.argv) == 7 and sys.argv[1] == "udp-latency":
        udp_latency(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
