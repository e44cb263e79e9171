#!/usr/bin/env python3
"""bench/quic's own clients, where no packaged load generator fits.

  quic_client.py udp-latency HOST PORT QPS SECS QUERIES
      Paced UDP queries (QPS a second for SECS seconds, the names of the
      dnsperf-format file QUERIES in turn), each timed from its send to its
      answer; prints "sent N answered N p50_us X p90_us X p99_us X".
  quic_client.py h3 HOST PORT QPS SECS CA
      DNS over HTTP/3 (aioquic): one connection, POSTs of one query
      (host1.bench.test A) paced at QPS a second for SECS seconds; prints
      "sent N answered N". For the server's CPU per query at a rate both
      this and h2load reach: this client is slow, it is no measure of the
      server's peak.
  quic_client.py doq HOST PORT QPS SECS CA
      DNS over QUIC (RFC 9250, aioquic): one connection, one stream a query
      (the names of host0..host9999.bench.test, ID 0, two-byte length),
      paced as h3's; CA "none" checks no certificate (Knot's own). Prints
      "sent N answered N".
"""
import asyncio
import socket
import ssl
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


async def h3(host, port, qps, secs, ca):
    from aioquic.asyncio import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration

    class Client(QuicConnectionProtocol):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.h3 = H3Connection(self._quic)
            self.waiting = {}

        def quic_event_received(self, ev):
            for e in self.h3.handle_event(ev):
                if isinstance(e, (HeadersReceived, DataReceived)) and e.stream_ended:
                    f = self.waiting.pop(e.stream_id, None)
                    if f is not None and not f.done():
                        f.set_result(True)

        async def post(self, body):
            sid = self._quic.get_next_available_stream_id()
            self.h3.send_headers(sid, [
                (b":method", b"POST"), (b":scheme", b"https"),
                (b":authority", b"dns.test"), (b":path", b"/dns-query"),
                (b"content-type", b"application/dns-message"),
                (b"content-length", str(len(body)).encode()),
            ])
            self.h3.send_data(sid, body, end_stream=True)
            f = asyncio.get_running_loop().create_future()
            self.waiting[sid] = f
            self.transmit()
            try:
                await asyncio.wait_for(f, 2)
                return True
            except asyncio.TimeoutError:
                return False

    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="dns.test")
    cfg.load_verify_locations(ca)
    qps, secs = int(qps), float(secs)
    body = wire("host1.bench.test")
    async with connect(host, int(port), configuration=cfg, create_protocol=Client) as c:
        tasks = []
        start = time.perf_counter()
        n = 0
        while time.perf_counter() < start + secs:
            due = start + n / qps
            d = due - time.perf_counter()
            if d > 0:
                await asyncio.sleep(d)
            tasks.append(asyncio.ensure_future(c.post(body)))
            n += 1
        done = await asyncio.gather(*tasks)
    print(f"sent {n} answered {sum(done)}")


async def doq(host, port, qps, secs, ca):
    import ssl as _ssl

    from aioquic.asyncio import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import StreamDataReceived

    class Client(QuicConnectionProtocol):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.waiting = {}
            self.got = {}

        def quic_event_received(self, ev):
            if isinstance(ev, StreamDataReceived):
                buf = self.got.get(ev.stream_id, b"") + ev.data
                self.got[ev.stream_id] = buf
                if ev.end_stream:
                    self.got.pop(ev.stream_id, None)
                    f = self.waiting.pop(ev.stream_id, None)
                    ok = len(buf) > 6 and (buf[5] & 0x0F) in (0, 3)
                    if f is not None and not f.done():
                        f.set_result(ok)

        async def ask(self, msg):
            sid = self._quic.get_next_available_stream_id()
            self._quic.send_stream_data(sid, struct.pack(">H", len(msg)) + msg, end_stream=True)
            f = asyncio.get_running_loop().create_future()
            self.waiting[sid] = f
            self.transmit()
            try:
                return await asyncio.wait_for(f, 2)
            except asyncio.TimeoutError:
                return False

    cfg = QuicConfiguration(is_client=True, alpn_protocols=["doq"], server_name="dns.test")
    if ca == "none":
        cfg.verify_mode = _ssl.CERT_NONE
    else:
        cfg.load_verify_locations(ca)
    qps, secs = int(qps), float(secs)
    async with connect(host, int(port), configuration=cfg, create_protocol=Client) as c:
        tasks = []
        start = time.perf_counter()
        n = 0
        while time.perf_counter() < start + secs:
            d = start + n / qps - time.perf_counter()
            if d > 0:
                await asyncio.sleep(d)
            tasks.append(asyncio.ensure_future(c.ask(wire(f"host{n % 10000}.bench.test"))))
            n += 1
        done = await asyncio.gather(*tasks)
    print(f"sent {n} answered {sum(done)}")


def main():
    if len(sys.argv) == 7 and sys.argv[1] == "udp-latency":
        udp_latency(*sys.argv[2:])
    elif len(sys.argv) == 7 and sys.argv[1] == "doq":
        asyncio.run(doq(*sys.argv[2:]))
    elif len(sys.argv) == 7 and sys.argv[1] == "h3":
        asyncio.run(h3(*sys.argv[2:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
