"""The SOCKS5 handshake machine (meshd/socks_wire.py): every message, each bad input with its counter name and
the answer RFC 1928/1929 has for it, exact byte counts asked for, and hypothesis fuzzing (random bytes in random
pieces never raise anything but SocksError; a valid handshake cut anywhere gives the same request); the UDP
relay's datagram header (parse_udp, udp_datagram: each malformed header, fragments, a hypothesis round trip).
Also the [socks] configuration: defaults, each refusal with its fix, and when the gateway may start."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omerta_mesh.core.errors import UsageError
from omerta_mesh.meshd import config as config_mod
from omerta_mesh.meshd.socks import Plan, plan
from omerta_mesh.meshd.socks_wire import (
    CONNECT,
    DOMAIN,
    IPV4,
    IPV6,
    UDP_ASSOCIATE,
    Credentials,
    Fault,
    Handshake,
    NeedData,
    Phase,
    Reply,
    Request,
    SocksError,
    UdpDatagram,
    parse_udp,
    reply_bytes,
    udp_datagram,
)

GREET = b"\x05\x01\x00"


def request(host: bytes, port: int = 80, cmd: int = CONNECT, atyp: int = DOMAIN, ver: int = 5) -> bytes:
    addr = bytes([len(host)]) + host if atyp == DOMAIN else host
    return bytes([ver, cmd, 0, atyp]) + addr + port.to_bytes(2, "big")


def run(hs: Handshake, data: bytes) -> tuple[object, bytes]:
    """Feed everything, then the first event that is not NeedData (or the NeedData), and what to send."""
    hs.receive_data(data)
    e = hs.next_event()
    return e, hs.data_to_send()


def fails(hs: Handshake, data: bytes, fault: Fault) -> bytes:
    hs.receive_data(data)
    with pytest.raises(SocksError) as err:
        while True:
            e = hs.next_event()
            assert not isinstance(e, NeedData), f"asked for more ({e}) instead of refusing"
            if isinstance(e, Credentials):
                hs.auth_result(False)
    assert err.value.fault is fault, err.value
    out = hs.data_to_send()
    with pytest.raises(SocksError):  # sticky
        hs.next_event()
    assert hs.phase is Phase.FAILED
    return out


# ------------------------------------------------------------------ the good paths
def test_connect_by_name_without_login() -> None:
    hs = Handshake(auth_required=False)
    e, out = run(hs, GREET + request(b"bravo", 8080))
    assert out == b"\x05\x00"
    assert e == Request(CONNECT, DOMAIN, "bravo", 8080)
    assert hs.next_event() is None  # the reply is owed
    hs.reply(Reply.SUCCEEDED)
    assert hs.data_to_send() == b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    assert hs.phase is Phase.DONE and hs.trailing_data == b""


def test_ip_addresses_and_the_longest_host_name() -> None:
    for atyp, raw, text in ((IPV4, bytes([10, 1, 2, 3]), "10.1.2.3"), (IPV6, bytes(15) + b"\x01", "::1"),
                            (DOMAIN, b"h" * 255, "h" * 255)):
        hs = Handshake(False)
        e, _ = run(hs, GREET + request(raw, 443, atyp=atyp))
        assert e == Request(CONNECT, atyp, text, 443)


def test_login_then_request_and_bytes_after_it_stay_trailing() -> None:
    hs = Handshake(auth_required=True)
    e, out = run(hs, b"\x05\x02\x00\x02" + b"\x01\x03bob\x06secret" + request(b"bravo") + b"GET /")
    assert out == b"\x05\x02" and e == Credentials(b"bob", b"secret")
    hs.auth_result(True)
    assert hs.data_to_send() == b"\x01\x00"
    assert hs.next_event() == Request(CONNECT, DOMAIN, "bravo", 80)
    hs.reply(Reply.SUCCEEDED)
    assert hs.trailing_data == b"GET /"


def test_need_data_asks_exactly_for_the_rest_of_each_message() -> None:
    hs = Handshake(True)
    asked = []
    wire = b"\x05\x02\x00\x02" + b"\x01\x02ab\x01c" + request(b"bravo")
    pos = 0
    while True:
        e = hs.next_event()
        if isinstance(e, NeedData):
            asked.append(e.n)
            hs.receive_data(wire[pos : pos + e.n])
            pos += e.n
        elif isinstance(e, Credentials):
            hs.auth_result(True)
        else:
            break
    assert e == Request(CONNECT, DOMAIN, "bravo", 80) and pos == len(wire)
    # greeting 2 + 2 methods; auth 2 + user and PLEN 3 + password 1; request 4 + LEN 1 + name and port 7
    assert asked == [2, 2, 2, 3, 1, 4, 1, 7]


def test_misuse_is_a_usage_error() -> None:
    hs = Handshake(False)
    with pytest.raises(UsageError):
        hs.reply(Reply.SUCCEEDED)
    with pytest.raises(UsageError):
        hs.auth_result(True)


# ------------------------------------------------------------------ bad input: the fault and the protocol's answer
def test_bad_versions() -> None:
    assert fails(Handshake(False), b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00", Fault.BAD_VERSION) == b""  # SOCKS4: no answer
    assert fails(Handshake(False), b"GET / HTTP/1.1\r\n", Fault.BAD_VERSION) == b""
    assert fails(Handshake(False), GREET + request(b"bravo", ver=4), Fault.BAD_VERSION) == b"\x05\x00" + reply_bytes(Reply.GENERAL_FAILURE)
    assert fails(Handshake(True), b"\x05\x01\x02" + b"\x02\x01a\x01b", Fault.BAD_VERSION) == b"\x05\x02\x01\x01"


def test_no_acceptable_method() -> None:
    assert fails(Handshake(False), b"\x05\x00", Fault.NO_ACCEPTABLE_METHOD) == b"\x05\xff"  # no methods at all
    assert fails(Handshake(False), b"\x05\x02\x01\x02", Fault.NO_ACCEPTABLE_METHOD) == b"\x05\xff"  # GSSAPI, login
    assert fails(Handshake(True), b"\x05\x01\x00", Fault.NO_ACCEPTABLE_METHOD) == b"\x05\xff"  # login required


def test_wrong_login() -> None:
    assert fails(Handshake(True), b"\x05\x01\x02\x01\x01a\x01b", Fault.AUTH_FAILED) == b"\x05\x02\x01\x01"


def test_bad_host_names_and_address_types() -> None:
    failure = b"\x05\x00" + reply_bytes(Reply.GENERAL_FAILURE)
    assert fails(Handshake(False), GREET + b"\x05\x01\x00\x03\x00\x00\x50", Fault.BAD_HOSTNAME) == failure  # length 0
    assert fails(Handshake(False), GREET + request(b"bra vo"), Fault.BAD_HOSTNAME) == failure
    assert fails(Handshake(False), GREET + request(b"bravo\x00.evil"), Fault.BAD_HOSTNAME) == failure
    assert fails(Handshake(False), GREET + request("bravø".encode()), Fault.BAD_HOSTNAME) == failure
    assert fails(Handshake(False), GREET + b"\x05\x01\x00\x09", Fault.BAD_ATYP) == b"\x05\x00" + reply_bytes(Reply.ATYP_NOT_SUPPORTED)


def test_truncated_input_only_asks_for_more() -> None:
    for cut in (GREET[:1], GREET + request(b"bravo")[:3], GREET + request(b"bravo")[:7], GREET + request(b"x" * 200)[:100]):
        hs = Handshake(False)
        hs.receive_data(cut)
        assert isinstance(hs.next_event(), NeedData)


def test_commands_are_the_callers_to_judge() -> None:
    hs = Handshake(False)
    e, _ = run(hs, GREET + request(b"bravo", cmd=UDP_ASSOCIATE))
    assert isinstance(e, Request) and e.command == UDP_ASSOCIATE
    hs.reply(Reply.COMMAND_NOT_SUPPORTED)
    assert hs.data_to_send()[1] == 7 and hs.phase is Phase.FAILED


# ------------------------------------------------------------------ fuzzing
def drive(hs: Handshake, chunks: list[bytes]) -> object:
    """Feed chunks as a driver would, logging in with any credentials; the last event or the SocksError."""
    e: object = None
    for c in chunks:
        hs.receive_data(c)
        try:
            while True:
                e = hs.next_event()
                if isinstance(e, Credentials):
                    assert len(e.user) <= 255 and len(e.password) <= 255
                    hs.auth_result(True)
                    continue
                break
        except SocksError as err:
            return err
        if isinstance(e, Request):
            break
    return e


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12), st.booleans())
def test_random_bytes_never_raise_anything_else(chunks: list[bytes], auth: bool) -> None:
    hs = Handshake(auth)
    e = drive(hs, chunks)
    assert e is None or isinstance(e, (NeedData, Request, SocksError)), e
    if isinstance(e, Request):
        assert 0 <= e.port < 65536 and e.host and all(0x21 <= ord(c) < 0x7F for c in e.host)
    if isinstance(e, SocksError):
        assert hs.phase is Phase.FAILED


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=255).filter(lambda b: all(0x21 <= c < 0x7F for c in b)), st.integers(0, 65535),
       st.lists(st.integers(1, 300), max_size=8), st.booleans())
def test_a_valid_handshake_cut_anywhere_gives_the_same_request(host: bytes, port: int, cuts: list[int], auth: bool) -> None:
    wire = (b"\x05\x02\x00\x02\x01\x01u\x01p" if auth else GREET) + request(host, port)
    pieces, pos = [], 0
    for c in sorted(cuts):
        pieces.append(wire[pos:c])
        pos = max(pos, c)
    pieces.append(wire[pos:])
    hs = Handshake(auth)
    assert drive(hs, pieces) == Request(CONNECT, DOMAIN, host.decode(), port)


# ------------------------------------------------------------------ UDP ASSOCIATE: the reply and datagram headers
def test_a_udp_associate_reply_carries_the_relays_address() -> None:
    hs = Handshake(False)
    e, _ = run(hs, GREET + request(bytes(4), 4321, cmd=UDP_ASSOCIATE, atyp=IPV4))
    assert e == Request(UDP_ASSOCIATE, IPV4, "0.0.0.0", 4321)
    hs.reply(Reply.SUCCEEDED, (ipaddress.ip_address("127.0.0.1"), 0x1234))
    assert hs.data_to_send() == b"\x05\x00\x00\x01\x7f\x00\x00\x01\x12\x34" and hs.phase is Phase.DONE
    assert reply_bytes(Reply.SUCCEEDED, (ipaddress.ip_address("::1"), 80)) == b"\x05\x00\x00\x04" + bytes(15) + b"\x01\x00\x50"


def test_udp_datagrams_of_each_address_type() -> None:
    assert parse_udp(b"\0\0\0\x01\x64\x40\x00\x02\x1e\x61hi") == UdpDatagram(IPV4, "100.64.0.2", 7777, b"hi")
    six = ipaddress.ip_address("fd00::2")
    assert parse_udp(b"\0\0\0\x04" + six.packed + b"\x00\x35") == UdpDatagram(IPV6, "fd00::2", 53, b"")
    assert parse_udp(b"\0\0\0\x03\x06b.home\x00\x07" + b"x" * 2000) == UdpDatagram(DOMAIN, "b.home", 7, b"x" * 2000)
    assert udp_datagram(six, 53, b"ok") == b"\0\0\0\x04" + six.packed + b"\x00\x35ok"


@pytest.mark.parametrize("datagram, fault", [
    (b"", Fault.UDP_BAD_HEADER),
    (b"\0\0\0\x01", Fault.UDP_BAD_HEADER),  # shorter than any header
    (b"\0\x01\0\x01\x7f\0\0\x01\0\x50", Fault.UDP_BAD_HEADER),  # RSV not 0
    (b"\0\0\x01\x01\x7f\0\0\x01\0\x50data", Fault.UDP_FRAGMENT),
    (b"\0\0\x80\x01\x7f\0\0\x01\0\x50data", Fault.UDP_FRAGMENT),  # (the last fragment's high bit)
    (b"\0\0\0\x09\x7f\0\0\x01\0\x50", Fault.UDP_BAD_HEADER),  # address type 9
    (b"\0\0\0\x01\x7f\0\0\x01\0", Fault.UDP_BAD_HEADER),  # port cut short
    (b"\0\0\0\x04" + bytes(10), Fault.UDP_BAD_HEADER),  # IPv6 address cut short
    (b"\0\0\0\x03\x20bravo\0\x50", Fault.UDP_BAD_HEADER),  # a name longer than the datagram
    (b"\0\0\0\x03\x00\0\x50", Fault.UDP_BAD_HEADER),  # an empty name
    (b"\0\0\0\x03\x06bra vo\0\x50", Fault.UDP_BAD_HEADER),
    (b"\0\0\0\x03\x06bravo\xff\0\x50", Fault.UDP_BAD_HEADER),
])
def test_malformed_udp_headers_are_faults(datagram: bytes, fault: Fault) -> None:
    with pytest.raises(SocksError) as err:
        parse_udp(datagram)
    assert err.value.fault is fault, err.value


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_random_datagrams_parse_or_raise_socks_error(data: bytes) -> None:
    try:
        d = parse_udp(data)
    except SocksError as e:
        assert e.fault in (Fault.UDP_BAD_HEADER, Fault.UDP_FRAGMENT)
        return
    assert 0 <= d.port < 65536 and d.host and data.endswith(d.data) and data[2] == 0


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.integers(0, 65535), st.binary(max_size=300))
def test_a_wrapped_datagram_parses_back(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, data: bytes) -> None:
    assert parse_udp(udp_datagram(ip, port, data)) == UdpDatagram(IPV4 if ip.version == 4 else IPV6, str(ip), port, data)


# ------------------------------------------------------------------ [socks] configuration
def build(**socks: object) -> config_mod.DaemonConfig:
    return config_mod.build({"socks": socks}, "meshd.toml")


def test_config_defaults_off_and_refusals_name_cause_and_fix() -> None:
    d = config_mod.default().socks
    assert (d.listen, d.users, d.max_clients) == ("", [], 64) and plan(d) is None
    for socks, words in (({"listen": "localhost:1080"}, "IP address"), ({"listen": "127.0.0.1"}, "ADDRESS:PORT"),
                         ({"listen": "127.0.0.1:70000"}, "0-65535"), ({"users": ["nopassword"]}, "USER:PASSWORD"),
                         ({"users": ["u:" + "p" * 256]}, "255 bytes"), ({"max_clients": 0}, "at least 1"),
                         ({"handshake_timeout": 0}, "at least 1"), ({"listen": 1080}, "wrong type")):
        with pytest.raises(config_mod.ConfigError) as e:
            build(**socks)
        assert "meshd.toml" in str(e.value) and words in str(e.value), (socks, e.value)
    assert "secret" not in str(pytest.raises(config_mod.ConfigError, build, users=["u:" + "secret" * 50]).value)


def test_where_the_gateway_may_start() -> None:
    assert plan(build(listen="127.0.0.1:1080").socks) == Plan("127.0.0.1", 1080, False)
    assert plan(build(listen="[::1]:0").socks) == Plan("::1", 0, False)
    assert plan(build(listen="127.0.0.1:1080", users=["u:p"]).socks) == Plan("127.0.0.1", 1080, True)
    why = plan(build(listen="0.0.0.0:1080").socks)
    assert isinstance(why, str) and "not started" in why and "users" in why and "127.0.0.1" in why
    assert plan(build(listen="0.0.0.0:1080", users=["u:p"]).socks) == Plan("0.0.0.0", 1080, True)
