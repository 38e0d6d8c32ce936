"""SOCKS5 UDP ASSOCIATE through the virtual network (issue 13, item 5): two real omerta-meshd daemons in the
netns lab, each with a TUN; A runs the gateway on 127.0.0.1 in its namespace, B a UDP echo server on its mesh
IPv4 and IPv6.

* a SOCKS5 UDP client (below, written with meshd/socks_wire.py's parser) in A's namespace gets the relay's
  address, sends through it to ``b.lab`` and to B's mesh IPv4 and IPv6, and gets each echo back with the header
  naming B's mesh IP and port;
* a destination outside the mesh, a fragment, a bad header and a datagram from another port are dropped and
  counted, and the association keeps relaying;
* closing the TCP control connection ends the association: its relay socket is gone (ICMP port unreachable)
  and ``socks.udp_active`` returns to 0; one association more than a client may hold is refused (REP 0x01);
* as for CONNECT, a user who may not write (``nobody``) is refused (REP 0x02) before any relay is opened.

Without a TUN the gateway refuses UDP ASSOCIATE with 0x07 (tests/clients/test_socks.py: daemons there run
without TUN).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netns.lab import Lab
from netns.test_mesh_matrix import form_network, say, start_all, wait_for
from netns.test_vnet import daemon, ping_until, up

pytestmark = pytest.mark.root

GATEWAY = '[socks]\nlisten = "127.0.0.1:0"\n'
NOBODY = ("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups")

ECHO = r"""
import select, socket, sys
socks = []
for ip in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6 if ':' in ip else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 7777)); socks.append(s)
print('ready', flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        data, addr = s.recvfrom(65535)
        s.sendto(b'echo:' + data, addr)
"""

# A SOCKS5 UDP client driven line by line on stdin; one JSON line out per command.
#   assoc            a TCP control connection and UDP ASSOCIATE naming our UDP socket's port -> {"rep", "bnd"}
#   send HOST PORT TEXT [FRAG]   through the newest association; waits 3 s for a datagram -> {"reply": ...}
#   raw HEX          these bytes to the relay as they are -> {}
#   stranger HOST PORT TEXT      the same from another UDP socket -> {"reply": ...}
#   close            the newest control connection -> {}
CLIENT = r"""
import ipaddress, json, socket, sys
from omerta_mesh.meshd.socks_wire import DOMAIN, address_bytes, parse_udp
gw = int(sys.argv[1]); assocs = []

def header(host, port, frag=0):
    try:
        addr = address_bytes(ipaddress.ip_address(host), port)
    except ValueError:
        addr = bytes([DOMAIN, len(host)]) + host.encode() + port.to_bytes(2, 'big')
    return bytes([0, 0, frag]) + addr

def exchange(u, relay, data):
    u.sendto(data, relay); u.settimeout(3)
    try:
        got = u.recv(65535)
    except socket.timeout:
        return None
    except ConnectionRefusedError:
        return 'refused'
    d = parse_udp(got)
    return [d.host, d.port, d.data.decode()]

for line in sys.stdin:
    cmd, *args = line.split()
    out = {}
    if cmd == 'assoc':
        t = socket.create_connection(('127.0.0.1', gw), timeout=10)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))
        t.sendall(b'\x05\x01\x00' + bytes([5, 3, 0]) + address_bytes(ipaddress.ip_address('0.0.0.0'), u.getsockname()[1]))
        got = b''
        while len(got) < 12:
            chunk = t.recv(12 - len(got))
            if not chunk: break
            got += chunk
        out = {'rep': got[3] if len(got) > 3 else None}
        if len(got) == 12 and got[3] == 0:
            relay = (str(ipaddress.ip_address(got[6:10])), int.from_bytes(got[10:12], 'big'))
            assocs.append((t, u, relay)); out['bnd'] = list(relay)
        else:
            t.close(); u.close()
    elif cmd == 'send':
        t, u, relay = assocs[-1]
        out = {'reply': exchange(u, relay, header(args[0], int(args[1]), int(args[3]) if len(args) > 3 else 0) + args[2].encode())}
    elif cmd == 'raw':
        assocs[-1][1].sendto(bytes.fromhex(args[0]), assocs[-1][2])
    elif cmd == 'stranger':
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))
        out = {'reply': exchange(s, assocs[-1][2], header(args[0], int(args[1])) + args[2].encode())}
    elif cmd == 'close':
        t, u, relay = assocs.pop()
        t.close(); assocs.append((None, u, relay))  # (the UDP socket stays: a later send shows the relay is gone)
    elif cmd == 'drop':
        assocs.pop()
    print(json.dumps(out), flush=True)
"""


class Client:
    def __init__(self, d, gw: int, runas: tuple[str, ...] = ()) -> None:
        self.p = d.lab.run(d.host, [*runas, sys.executable, "-c", CLIENT, gw], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)

    def __call__(self, *words: object) -> dict:
        self.p.stdin.write(" ".join(map(str, words)) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, f"the client died: {self.p.wait(5)}"
        return json.loads(line)

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(10)


def counters(d) -> dict:
    return d.call("status.get")["counters"]


def gateway_port(d) -> int:
    detail = d.call("status.get")["socks"]["detail"]
    return int(detail.split()[0].rpartition(":")[2])


def test_udp_associate_relays_to_mesh_ips_and_drops_the_rest(lab: Lab, tmp_path: Path, capsys) -> None:
    a, b = daemon(lab, tmp_path, "A", extra=GATEWAY), daemon(lab, tmp_path, "B")
    start_all([a, b])
    form_network(a, [b])
    (a4, a6), (b4, b6) = up(a, b)
    ping_until(a, b4)
    echo = b.lab.run(b.host, ["python3", "-c", ECHO, b4, b6], stdout=subprocess.PIPE)
    assert echo.stdout.readline().strip() == b"ready"
    gw = gateway_port(a)

    c = Client(a, gw)
    try:
        r = c("assoc")
        assert r["rep"] == 0 and r["bnd"][0] == "127.0.0.1" and r["bnd"][1] != gw, r
        assert c("send", "b.lab", 7777, "hello")["reply"] == [b4, 7777, "echo:hello"]  # a name: its IPv4 first
        assert c("send", b4, 7777, "four")["reply"] == [b4, 7777, "echo:four"]
        assert c("send", b6, 7777, "six")["reply"] == [b6, 7777, "echo:six"]
        say(capsys, f"\nthrough A's gateway {r['bnd']}: b.lab, {b4} and {b6} answered")

        before = counters(a)
        assert c("send", "192.0.2.1", 7777, "outside")["reply"] is None  # not a mesh IP: no exit node
        assert c("send", "example.com", 7777, "outside")["reply"] is None
        assert c("send", a4, 7777, "me")["reply"] is None  # ourselves: not a peer
        assert c("send", b4, 7777, "frag", 1)["reply"] is None  # fragments are not reassembled
        assert c("raw", "0001000100") == {}  # RSV not 0
        assert c("raw", "000000090a") == {}  # an unknown address type
        assert c("stranger", b4, 7777, "other")["reply"] is None  # not the port the client named
        want = {"socks.udp_not_mesh": 3, "socks.udp_fragment": 1, "socks.udp_bad_header": 2, "socks.udp_stranger": 1}
        got = wait_for(lambda: all((n := counters(a)).get(k, 0) - before.get(k, 0) == v for k, v in want.items()) and n, 10)
        assert got, (want, counters(a))
        assert c("send", "b.lab.", 7777, "still")["reply"] == [b4, 7777, "echo:still"]  # the association serves on
        n = counters(a)
        assert n["socks.udp_active"] == 1 and n["socks.udp_associations"] == 1, n
        assert n["socks.udp_sent"] - n["socks.udp_received"] == 0 and n["socks.udp_sent"] >= 4, n

        # a client holds at most 8 associations; closing the control connection ends one
        for _ in range(7):
            assert c("assoc")["rep"] == 0
        assert c("assoc") == {"rep": 1}
        assert counters(a)["socks.udp_too_many"] == 1
        c("close")
        assert wait_for(lambda: counters(a)["socks.udp_active"] == 7, 10), counters(a)
        assert c("send", b4, 7777, "late")["reply"] is None  # its relay socket is closed
        c("drop")
        for _ in range(7):
            c("close")
            c("drop")
        assert wait_for(lambda: counters(a)["socks.udp_active"] == 0, 10), counters(a)
        assert c("assoc")["rep"] == 0  # room again
    finally:
        c.close()
    assert wait_for(lambda: counters(a)["socks.udp_active"] == 0, 10), counters(a)

    # who may use it: as for CONNECT, nobody (not root, not in the daemon's group) is refused before any relay
    n = Client(a, gw, NOBODY)
    try:
        assert n("assoc") == {"rep": 2}
    finally:
        n.close()
    c = counters(a)
    assert c["socks.not_permitted"] == 1 and c["socks.udp_associations"] == 9, c
    say(capsys, "udp counters: " + json.dumps({k: v for k, v in sorted(c.items()) if k.startswith("socks.udp")}))
    assert a.proc.poll() is None and "Traceback" not in a.log(100_000)
