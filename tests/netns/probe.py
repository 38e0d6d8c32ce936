#!/usr/bin/env python3
"""UDP prober for the netns NAT lab (stdlib only; run inside a namespace with ``ip netns exec``).

Modes (each prints JSON, one object per line, flushed):

  server   --bind IP --ports P1,P2        reflect ("echo": reply with the observed source), "poke" (send
                                          from another of our ports to a target) and "register" (rendezvous
                                          for hole punching); prints {"event": "ready"} once bound.
  classify --servers IP1,IP2 --ports P1,P2 --local-port L
                                          RFC 4787 style NAT classification from behind a NAT.
  punch    --server IP:P --id A --peer B --local-port L
                                          register, learn the peer's public endpoint, simultaneous sends.
  echo     --to IP:P [--to ...] [--local-port L] [--listen S]
                                          observed source per target, then report what arrives for S seconds.
  send     --to IP:P --data TEXT [--local-port L]
  knock    --to IP:P                      connected UDP send: "refused" (ICMP port unreachable came back),
                                          "reply" or "silent" (a firewall dropped it).
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time


def out(**kw) -> None:
    print(json.dumps(kw), flush=True)


def ep(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def udp(port: int = 0, ip: str = "0.0.0.0") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    return s


def recv_json(s: socket.socket, timeout: float) -> tuple[dict | None, tuple[str, int] | None]:
    r, _, _ = select.select([s], [], [], max(0.0, timeout))
    if not r:
        return None, None
    data, src = s.recvfrom(65535)
    try:
        return json.loads(data), src
    except ValueError:
        return {"raw": data.decode(errors="replace")}, src


def echo(s: socket.socket, target: tuple[str, int], token: str, tries: int = 24, wait: float = 0.25):
    """Ask a server which source it sees; retransmits; returns [ip, port] or None."""
    for _ in range(tries):
        s.sendto(json.dumps({"cmd": "echo", "token": token}).encode(), target)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            msg, _src = recv_json(s, left)
            if msg is not None and msg.get("token") == token and "observed" in msg:
                return msg["observed"]
    return None


# ---------------------------------------------------------------- server
def cmd_server(a) -> int:
    socks = {p: udp(p, a.bind) for p in a.ports}
    by_fd = {s.fileno(): s for s in socks.values()}
    registered: dict[str, tuple[tuple[str, int], socket.socket]] = {}
    out(event="ready", ip=a.bind, ports=a.ports)
    while True:
        r, _, _ = select.select(list(by_fd), [], [])
        for fd in r:
            s = by_fd[fd]
            try:
                data, src = s.recvfrom(65535)
                msg = json.loads(data)
            except (OSError, ValueError):
                continue
            cmd = msg.get("cmd")
            try:
                if cmd == "echo":
                    reply = {"observed": list(src), "server": list(s.getsockname()), "token": msg.get("token")}
                    s.sendto(json.dumps(reply).encode(), src)
                elif cmd == "poke":
                    sender = socks[int(msg["from_port"])]
                    body = {"poke": msg.get("token"), "server": list(sender.getsockname())}
                    sender.sendto(json.dumps(body).encode(), tuple(msg["target"]))
                elif cmd == "register":
                    me, peer = str(msg["id"]), str(msg["peer"])
                    registered[me] = (src, s)
                    if peer in registered:
                        psrc, ps = registered[peer]
                        s.sendto(json.dumps({"peer": list(psrc), "self": list(src)}).encode(), src)
                        ps.sendto(json.dumps({"peer": list(src), "self": list(psrc)}).encode(), psrc)
            except (OSError, KeyError, ValueError, TypeError):
                continue


# ---------------------------------------------------------------- classify
def classify(local: tuple[str, int], local2: int, obs: dict, pokes: set[str]) -> dict:
    """Classify mapping, filtering and port allocation from the observations (RFC 4787 terms)."""
    m1, m2, m3, mf = (tuple(obs[k]) for k in ("s1p1", "s1p2", "s2p1", "fresh"))
    if m1 == m2 == m3 == tuple(local):
        mapping = "none"
    elif m1 == m2 == m3:
        mapping = "EIM"
    elif m1 == m2:
        mapping = "ADM"
    else:
        mapping = "APDM"
    if "other-ip" in pokes:
        filtering = "EIF"
    elif "same-ip" in pokes:
        filtering = "ADF"
    else:
        filtering = "APDF"
    ports: list[int] = []
    for m in (m1, m2, m3, mf):  # in allocation order; EIM repeats collapse
        if not ports or ports[-1] != m[1]:
            ports.append(m[1])
    deltas = [b - a for a, b in zip(ports, ports[1:])]
    if m1[1] == local[1] and mf[1] == local2:
        allocation = "preserve"
    elif deltas and all(d == 1 for d in deltas):
        allocation = "sequential"
    else:
        allocation = "random"
    return {"mapping": mapping, "filtering": filtering, "allocation": allocation, "ports": ports, "deltas": deltas}


def cmd_classify(a) -> int:
    s1, s2 = a.servers
    p1, p2 = a.ports
    main = udp(a.local_port)
    fresh = udp(a.local_port + 1)
    ctl = udp(0)
    obs: dict = {}
    for key, target in (("s1p1", (s1, p1)), ("s1p2", (s1, p2)), ("s2p1", (s2, p1))):
        obs[key] = echo(main, target, key)
    obs["fresh"] = echo(fresh, (s1, p1), "fresh")
    missing = [k for k, v in obs.items() if v is None]
    if missing:
        out(error=f"no echo reply for {missing}", observed=obs)
        return 2
    # Unsolicited sends towards the fresh mapping, which has only ever talked to s1:p1. The requests go
    # from another socket (another mapping), sent twice in case one is lost.
    asks = [((s1, p1), p2, "same-ip"), ((s2, p1), p2, "other-ip")]
    pokes: set[str] = set()
    start = time.monotonic()
    resend_at, deadline = start, start + a.wait
    while (left := deadline - time.monotonic()) > 0:
        if resend_at is not None and time.monotonic() >= resend_at:
            for server, from_port, token in asks:
                cmd = {"cmd": "poke", "target": obs["fresh"], "from_port": from_port, "token": token}
                ctl.sendto(json.dumps(cmd).encode(), server)
            resend_at = start + 0.2 if resend_at == start else None
        wait = left if resend_at is None else max(0.0, min(left, resend_at - time.monotonic()))
        msg, _src = recv_json(fresh, wait)
        if msg and "poke" in msg:
            pokes.add(msg["poke"])
    local_ip = _local_ip(s1)
    result = classify((local_ip, a.local_port), a.local_port + 1, obs, pokes)
    out(local=[local_ip, a.local_port], local2=a.local_port + 1, observed=obs, pokes=sorted(pokes), **result)
    return 0


def _local_ip(toward: str) -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((toward, 9))
        return s.getsockname()[0]
    finally:
        s.close()


# ---------------------------------------------------------------- punch
def cmd_punch(a) -> int:
    s = udp(a.local_port)
    server = a.server
    reply = None
    deadline = time.monotonic() + a.register_timeout
    while reply is None and time.monotonic() < deadline:
        s.sendto(json.dumps({"cmd": "register", "id": a.id, "peer": a.peer}).encode(), server)
        stop = time.monotonic() + 0.1
        while (left := stop - time.monotonic()) > 0:
            msg, src = recv_json(s, left)
            if msg and src == server and "peer" in msg:
                reply = msg
                break
    if reply is None:
        out(id=a.id, error="rendezvous timed out")
        return 2
    peer_ep = tuple(reply["peer"])
    targets = [peer_ep]
    got_from = None
    peer_got = False
    start = time.monotonic()
    end = start + a.duration
    next_send = start
    finishing = 0
    t_first = None
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_send:
            for t in targets:
                s.sendto(json.dumps({"punch": a.id, "got": got_from is not None}).encode(), t)
            next_send = now + a.interval
            if got_from and peer_got:
                finishing += 1
                if finishing > 3:
                    break
        msg, src = recv_json(s, max(0.0, next_send - time.monotonic()))
        if not msg or src == server or msg.get("punch") != a.peer:
            continue
        if got_from is None:
            got_from, t_first = src, time.monotonic() - start
        if src not in targets:
            targets.append(src)  # peer-reflexive: answer where it really came from
        if msg.get("got"):
            peer_got = True
    out(id=a.id, self=reply["self"], peer=list(peer_ep), received_from=list(got_from) if got_from else None,
        peer_got=peer_got, first_rx_s=t_first)
    return 0


# ---------------------------------------------------------------- echo / send / knock
def cmd_echo(a) -> int:
    s = udp(a.local_port)
    rc = 0
    for i, target in enumerate(a.to):
        obs = echo(s, target, f"e{i}", tries=max(1, int(a.timeout / 0.25)))
        if obs is None:
            rc = 1
        out(event="observed", to=list(target), observed=obs, local=list(s.getsockname()))
    end = time.monotonic() + a.listen
    while (left := end - time.monotonic()) > 0:
        msg, src = recv_json(s, left)
        if msg is not None:
            out(event="recv", src=list(src), msg=msg)
    out(event="done")
    return rc


def cmd_send(a) -> int:
    s = udp(a.local_port)
    for target in a.to:
        s.sendto(json.dumps({"data": a.data}).encode(), target)
    out(event="sent")
    return 0


def cmd_knock(a) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(a.to)
    result = "silent"
    try:
        for _ in range(2):
            s.send(json.dumps({"cmd": "echo", "token": "knock"}).encode())
            r, _, _ = select.select([s], [], [], a.timeout / 2)
            if r:
                s.recv(65535)
                result = "reply"
                break
    except ConnectionRefusedError:
        result = "refused"
    out(result=result)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    ports = lambda t: [int(x) for x in t.split(",")]  # noqa: E731
    sp = sub.add_parser("server")
    sp.add_argument("--bind", default="0.0.0.0")
    sp.add_argument("--ports", type=ports, required=True)
    sp = sub.add_parser("classify")
    sp.add_argument("--servers", type=lambda t: t.split(","), required=True)
    sp.add_argument("--ports", type=ports, required=True)
    sp.add_argument("--local-port", type=int, required=True)
    sp.add_argument("--wait", type=float, default=0.6)
    sp = sub.add_parser("punch")
    sp.add_argument("--server", type=ep, required=True)
    sp.add_argument("--id", required=True)
    sp.add_argument("--peer", required=True)
    sp.add_argument("--local-port", type=int, default=0)
    sp.add_argument("--duration", type=float, default=2.0)
    sp.add_argument("--interval", type=float, default=0.05)
    sp.add_argument("--register-timeout", type=float, default=5.0)
    sp = sub.add_parser("echo")
    sp.add_argument("--to", type=ep, action="append", default=[])
    sp.add_argument("--local-port", type=int, default=0)
    sp.add_argument("--timeout", type=float, default=2.0)
    sp.add_argument("--listen", type=float, default=0.0)
    sp = sub.add_parser("send")
    sp.add_argument("--to", type=ep, action="append", required=True)
    sp.add_argument("--data", default="")
    sp.add_argument("--local-port", type=int, default=0)
    sp = sub.add_parser("knock")
    sp.add_argument("--to", type=ep, required=True)
    sp.add_argument("--timeout", type=float, default=0.4)
    a = p.parse_args(argv)
    fn = {"server": cmd_server, "classify": cmd_classify, "punch": cmd_punch, "echo": cmd_echo,
          "send": cmd_send, "knock": cmd_knock}[a.mode]
    try:
        return fn(a)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
