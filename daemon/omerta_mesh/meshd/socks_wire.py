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

``Handshake`` is fed bytes (``receive_data``) and hands out one event at a time (``next_event``): ``NeedData(n)``
(at least n more bytes; a driver that reads at most n never reads past the handshake, so the bytes after the
request stay in its socket for the stream), ``Credentials`` (answer with ``auth_result``), or ``Request``
(answer with ``reply``). What to write is in ``data_to_send()``. Input that breaks the protocol raises
``SocksError`` with a ``Fault`` (its counter name) and leaves in ``data_to_send()`` the answer the protocol has
for it, if any (a bad greeting version has none; no acceptable method is 0xFF; a bad request gets REP 0x01 or
0x08), after which the driver closes the connection; every later call raises the same error. A message is at
most 513 bytes (the longest, a sub-negotiation with two 255-byte fields), so the buffer of an incomplete one is
bounded by the protocol itself. No clock: the driver owns the handshake deadline.
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
    UDP_REFUSED = "udp_refused"  # UDP ASSOCIATE (docs/architecture.md, "SOCKS5 gateway", says why)
    BAD_PORT = "bad_port"  # port 0
    NOT_MESH = "not_mesh"  # not a peer's name or mesh IP: no exit node to take it
    REFUSED = "refused"  # the peer refused the stream (port not exposed, nothing listening)
    UNREACHABLE = "unreachable"  # the peer did not answer the stream in time
    FAILED = "failed"  # the stream could not be opened here (stream limits)
    NOT_PERMITTED = "not_permitted"  # the client's user may not open streams (no login: root, daemon user, group)
    OWNER_UNKNOWN = "owner_unknown"  # the client's user could not be found (refused: no guessing)


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


def reply_bytes(code: Reply) -> bytes:
    """A request's reply; BND.ADDR 0.0.0.0 port 0 (a stream has no address of its own to show)."""
    return bytes((VERSION, int(code), 0, IPV4, 0, 0, 0, 0, 0, 0))


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

    def reply(self, code: Reply) -> None:
        if self.phase is not Phase.REPLY:
            raise UsageError(f"reply in phase {self.phase.value}")
        self._out += reply_bytes(code)
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
            start, end = 5, 5 + b[4]
        elif atyp in (IPV4, IPV6):
            start, end = 4, 4 + (4 if atyp == IPV4 else 16)
        else:
            self._fail(Fault.BAD_ATYP, f"address type {atyp}", reply_bytes(Reply.ATYP_NOT_SUPPORTED))
        if len(b) < end + 2:
            return NeedData(end + 2 - len(b))
        raw = bytes(b[start:end])
        if atyp == DOMAIN:
            host = host_name(raw)
            if host is None:
                self._fail(Fault.BAD_HOSTNAME, f"host name {raw[:40]!r} is not printable ASCII",
                           reply_bytes(Reply.GENERAL_FAILURE))
        else:
            host = str(ipaddress.ip_address(raw))
        req = Request(b[1], atyp, host, int.from_bytes(b[end : end + 2], "big"))
        del b[: end + 2]
        self.phase = Phase.REPLY
        return req

    def _fail(self, fault: Fault, detail: str, answer: bytes) -> NoReturn:
        self._out += answer
        self.phase = Phase.FAILED
        self._error = SocksError(fault, detail)
        raise self._error
