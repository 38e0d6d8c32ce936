"""The server side of a SOCKS5 handshake (RFC 1928) with username/password (RFC 1929), sans-I/O.

::

    client                                      server
    VER=5 NMETHODS METHOD...              ->
                                          <-    VER=5 METHOD             0x00 none, 0x02 user/password, 0xFF none acceptable
    [VER=1 ULEN UNAME PLEN PASSWD         ->
                                          <-    VER=1 STATUS]            0x00 success, anything else: closed]
    VER=5 CMD RSV ATYP DST.ADDR DST.PORT  ->                             CMD 1 CONNECT, 2 BIND, 3 UDP ASSOCIATE
                                          <-    VER=5 REP RSV ATYP BND.ADDR BND.PORT

    ATYP 1: 4 bytes IPv4 | 3: LEN (1 byte), LEN bytes of host name | 4: 16 bytes IPv6; ports big-endian

    a UDP datagram to or from the relay (UDP ASSOCIATE, RFC 1928 section 7):
    RSV (2 bytes, 0) FRAG (1 byte) ATYP DST.ADDR DST.PORT DATA

``Handshake`` is fed bytes (``receive_data``) and hands out one event at a time (``next_event``): ``NeedData(n)``
(at least n more bytes; a driver that reads at most n never reads past the handshake, so the bytes after the
request stay in its socket for the stream), ``Credentials`` (answer with ``auth_result``), or ``Request``
(answer with ``reply``). What to write is in ``data_to_send()``. Input that breaks the protocol raises
``SocksError`` with a ``Fault`` (its counter name) and leaves in ``data_to_send()`` the answer the protocol has
for it, if any (a bad greeting version has none; no acceptable method is 0xFF; a bad request gets REP 0x01 or
0x08), after which the driver closes the connection; every later call raises the same error. A message is at
most 513 bytes (the longest, a sub-negotiation with two 255-byte fields), so the buffer of an incomplete one is
bounded by the protocol itself. No clock: the driver owns the handshake deadline.

``parse_udp`` reads one relayed datagram's header (``UdpDatagram``, or ``SocksError`` with ``UDP_BAD_HEADER``
or ``UDP_FRAGMENT``: we do not reassemble, so any fragment number but 0 is dropped); ``udp_datagram`` wraps a
reply; ``reply_bytes(code, bind)`` carries the relay's address in a UDP ASSOCIATE's reply.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import NoReturn

from ..core.errors import UsageError

VERSION = 5
AUTH_VERSION = 1
NO_AUTH, USER_PASSWORD, NO_ACCEPTABLE = 0x00, 0x02, 0xFF
CONNECT, BIND, UDP_ASSOCIATE = 1, 2, 3
IPV4, DOMAIN, IPV6 = 1, 3, 4


class Reply(enum.IntEnum):
    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    NOT_ALLOWED = 0x02  # connection not allowed by ruleset
    NETWORK_UNREACHABLE = 0x03
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    TTL_EXPIRED = 0x06
    COMMAND_NOT_SUPPORTED = 0x07
    ATYP_NOT_SUPPORTED = 0x08


class Fault(enum.Enum):
    """Why a SOCKS client was refused or closed; each value is a counter (``socks.<value>``)."""

    BAD_VERSION = "bad_version"  # greeting, sub-negotiation or request of another version
    NO_ACCEPTABLE_METHOD = "no_acceptable_method"
    AUTH_FAILED = "auth_failed"
    BAD_HOSTNAME = "bad_hostname"  # length 0, or bytes that are no host name
    BAD_ATYP = "bad_atyp"
    # the driver's (see meshd/socks.py)
    TRUNCATED = "truncated"  # the client closed inside the handshake
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    TOO_MANY_CLIENTS = "too_many_clients"
    BAD_COMMAND = "bad_command"  # BIND, or no command at all
    UDP_REFUSED = "udp_refused"  # UDP ASSOCIATE without a virtual network here (meshd/socks_udp.py)
    UDP_TOO_MANY = "udp_too_many"  # UDP ASSOCIATE: the client has as many associations open as it may
    BAD_PORT = "bad_port"  # port 0
    NOT_MESH = "not_mesh"  # not a peer's name or mesh IP: no exit node to take it
    REFUSED = "refused"  # the peer refused the stream (port not exposed, nothing listening)
    UNREACHABLE = "unreachable"  # the peer did not answer the stream in time
    FAILED = "failed"  # the stream could not be opened here (stream limits)
    NOT_PERMITTED = "not_permitted"  # the client's user may not open streams (no login: root, daemon user, group)
    OWNER_UNKNOWN = "owner_unknown"  # the client's user could not be found (refused: no guessing)
    # a relayed UDP datagram's header (parse_udp); the datagram is dropped, the association stays
    UDP_BAD_HEADER = "udp_bad_header"  # short, RSV not 0, an unknown address type, a bad host name
    UDP_FRAGMENT = "udp_fragment"  # FRAG not 0: fragments are not reassembled


class SocksError(Exception):
    def __init__(self, fault: Fault, detail: str) -> None:
        super().__init__(f"{fault.value}: {detail}")
        self.fault = fault
        self.detail = detail


@dataclass(frozen=True)
class NeedData:
    n: int  # at least this many more bytes


@dataclass(frozen=True)
class Credentials:
    user: bytes
    password: bytes


@dataclass(frozen=True)
class Request:
    command: int
    atyp: int
    host: str  # a host name as sent, or an IP address's text
    port: int


class Phase(enum.Enum):
    GREETING = "greeting"
    AUTH = "auth"
    AUTH_ANSWER = "auth answer"  # Credentials handed out; auth_result next
    REQUEST = "request"
    REPLY = "reply"  # Request handed out; reply next
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class UdpDatagram:
    atyp: int
    host: str  # as in Request
    port: int
    data: bytes


IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_bytes(ip: IPAddr, port: int) -> bytes:
    """ATYP, ADDR and PORT of an IP address."""
    return bytes((IPV4 if ip.version == 4 else IPV6,)) + ip.packed + port.to_bytes(2, "big")


def reply_bytes(code: Reply, bind: tuple[IPAddr, int] | None = None) -> bytes:
    """A request's reply; BND.ADDR ``bind`` (a UDP relay's address), else 0.0.0.0 port 0 (a stream has no address of
    its own to show)."""
    return bytes((VERSION, int(code), 0)) + address_bytes(*(bind or (ipaddress.IPv4Address(0), 0)))


def udp_datagram(source: IPAddr, port: int, data: bytes) -> bytes:
    """A datagram from ``source``:``port`` wrapped for the client."""
    return b"\0\0\0" + address_bytes(source, port) + data


def address_end(atyp: int, b: bytes | bytearray, at: int) -> tuple[int, int] | None:
    """Where the address of type ``atyp`` that begins at ``b[at]`` lies: (start, end); None: not a type we know.
    A host name's length byte must be in ``b`` (the caller checks there is a byte at ``at``)."""
    if atyp == DOMAIN:
        return at + 1, at + 1 + b[at]
    if atyp in (IPV4, IPV6):
        return at, at + (4 if atyp == IPV4 else 16)
    return None


def address_text(atyp: int, raw: bytes) -> str | None:
    """An address's text (a host name as sent, or an IP address); None: a host name that is empty or not ASCII."""
    return host_name(raw) if atyp == DOMAIN else str(ipaddress.ip_address(raw))


def parse_udp(datagram: bytes) -> UdpDatagram:
    if len(datagram) < 5:
        raise SocksError(Fault.UDP_BAD_HEADER, f"{len(datagram)} bytes: shorter than a header")
    if datagram[0] or datagram[1]:
        raise SocksError(Fault.UDP_BAD_HEADER, f"RSV {datagram[:2].hex()}, not 0000")
    if datagram[2]:
        raise SocksError(Fault.UDP_FRAGMENT, f"fragment {datagram[2]}: fragments are not reassembled")
    span = address_end(datagram[3], datagram, 4)
    if span is None:
        raise SocksError(Fault.UDP_BAD_HEADER, f"address type {datagram[3]}")
    start, end = span
    if len(datagram) < end + 2:
        raise SocksError(Fault.UDP_BAD_HEADER, f"{len(datagram)} bytes: the address is cut short")
    host = address_text(datagram[3], datagram[start:end])
    if host is None:
        raise SocksError(Fault.UDP_BAD_HEADER, f"host name {datagram[start:end][:40]!r} is empty or not printable ASCII")
    return UdpDatagram(datagram[3], host, int.from_bytes(datagram[end : end + 2], "big"), datagram[end + 2 :])


def host_name(raw: bytes) -> str | None:
    """A host name's text (printable ASCII, no spaces: DNS names, IDNA's xn-- form, our peers' names), else None."""
    if not raw or not all(0x21 <= c < 0x7F for c in raw):
        return None
    return raw.decode("ascii")


class Handshake:
    def __init__(self, auth_required: bool) -> None:
        self.auth_required = auth_required
        self.phase = Phase.GREETING
        self._buf = bytearray()
        self._out = bytearray()
        self._error: SocksError | None = None

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the request (a driver that reads what ``NeedData`` asks has none)."""
        return bytes(self._buf) if self.phase is Phase.DONE else b""

    def auth_result(self, ok: bool) -> None:
        if self.phase is not Phase.AUTH_ANSWER:
            raise UsageError(f"auth_result in phase {self.phase.value}")
        self._out += bytes((AUTH_VERSION, 0 if ok else 1))
        if ok:
            self.phase = Phase.REQUEST
        else:
            self._fail(Fault.AUTH_FAILED, "wrong user name or password", b"")

    def reply(self, code: Reply, bind: tuple[IPAddr, int] | None = None) -> None:
        if self.phase is not Phase.REPLY:
            raise UsageError(f"reply in phase {self.phase.value}")
        self._out += reply_bytes(code, bind)
        self.phase = Phase.DONE if code is Reply.SUCCEEDED else Phase.FAILED

    def next_event(self) -> NeedData | Credentials | Request | None:
        """The next event; None while the caller owes an answer (``auth_result``, ``reply``) or after the reply."""
        if self._error is not None:
            raise self._error
        if self.phase is Phase.GREETING:
            return self._greeting()
        if self.phase is Phase.AUTH:
            return self._auth()
        if self.phase is Phase.REQUEST:
            return self._request()
        return None

    # ------------------------------------------------------------------ the three client messages
    def _greeting(self) -> NeedData | Credentials | Request | None:
        b = self._buf
        if len(b) < 2:
            return NeedData(2 - len(b))
        if b[0] != VERSION:
            self._fail(Fault.BAD_VERSION, f"greeting of version {b[0]}", b"")
        n = b[1]
        if len(b) < 2 + n:
            return NeedData(2 + n - len(b))
        methods = bytes(b[2 : 2 + n])
        want = USER_PASSWORD if self.auth_required else NO_AUTH
        if want not in methods:
            self._fail(Fault.NO_ACCEPTABLE_METHOD, f"offered methods {methods.hex() or 'none'}, need {want:#04x}",
                       bytes((VERSION, NO_ACCEPTABLE)))
        del b[: 2 + n]
        self._out += bytes((VERSION, want))
        self.phase = Phase.AUTH if self.auth_required else Phase.REQUEST
        return self.next_event()

    def _auth(self) -> NeedData | Credentials:
        b = self._buf
        if len(b) < 2:
            return NeedData(2 - len(b))
        if b[0] != AUTH_VERSION:
            self._fail(Fault.BAD_VERSION, f"username/password sub-negotiation of version {b[0]}", bytes((AUTH_VERSION, 1)))
        ulen = b[1]
        if len(b) < 3 + ulen:
            return NeedData(3 + ulen - len(b))
        plen = b[2 + ulen]
        if len(b) < 3 + ulen + plen:
            return NeedData(3 + ulen + plen - len(b))
        creds = Credentials(bytes(b[2 : 2 + ulen]), bytes(b[3 + ulen : 3 + ulen + plen]))
        del b[: 3 + ulen + plen]
        self.phase = Phase.AUTH_ANSWER
        return creds

    def _request(self) -> NeedData | Request:
        b = self._buf
        if len(b) < 4:
            return NeedData(4 - len(b))
        if b[0] != VERSION:
            self._fail(Fault.BAD_VERSION, f"request of version {b[0]}", reply_bytes(Reply.GENERAL_FAILURE))
        atyp = b[3]
        if atyp == DOMAIN:
            if len(b) < 5:
                return NeedData(5 - len(b))
            if b[4] == 0:
                self._fail(Fault.BAD_HOSTNAME, "host name of length 0", reply_bytes(Reply.GENERAL_FAILURE))
        span = address_end(atyp, b, 4)
        if span is None:
            self._fail(Fault.BAD_ATYP, f"address type {atyp}", reply_bytes(Reply.ATYP_NOT_SUPPORTED))
        start, end = span
        if len(b) < end + 2:
            return NeedData(end + 2 - len(b))
        raw = bytes(b[start:end])
        host = address_text(atyp, raw)
        if host is None:
            self._fail(Fault.BAD_HOSTNAME, f"host name {raw[:40]!r} is not printable ASCII",
                       reply_bytes(Reply.GENERAL_FAILURE))
        req = Request(b[1], atyp, host, int.from_bytes(b[end : end + 2], "big"))
        del b[: end + 2]
        self.phase = Phase.REPLY
        return req

    def _fail(self, fault: Fault, detail: str, answer: bytes) -> NoReturn:
        self._out += answer
        self.phase = Phase.FAILED
        self._error = SocksError(fault, detail)
        raise self._error
