"""The encryption audit: every datagram is checked before it leaves, so plaintext can never slip out.

A datagram passes only if it is a well-formed packet of a known type: a handshake message of the exact
length with a non-zero mac1, a cookie reply of the exact length, or a transport packet that authenticates
under one of our live sessions' send keys (so a packet encrypted under a wrong key, or not at all, fails).
A violation is counted, reported with its destination, and in strict mode raises ``AuditViolation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from .counters import Counters
from .errors import MeshError, WireError
from .session.session import Session
from .wire import handshake as hw
from .wire.packet import PacketType, decode_transport, packet_type

Address = tuple[str, int]


class AuditViolation(MeshError):
    """A datagram that is not a well-formed encrypted omerta packet was about to be sent."""


@dataclass(frozen=True, slots=True)
class Violation:
    dst: Address
    reason: str
    size: int


class EncryptionAudit:
    def __init__(
        self, sessions_for: Callable[[int], Iterable[Session]], strict: bool = False,
        relay_check: Callable[[bytes], str | None] | None = None,
    ) -> None:
        self.sessions_for = sessions_for
        self.strict = strict
        self.relay_check = relay_check
        self.checked = 0
        self.violations: list[Violation] = []

    def verdict(self, data: bytes) -> str | None:
        """None if the datagram is a well-formed encrypted packet, else the reason it is not."""
        try:
            t = packet_type(data)
            if t is PacketType.TRANSPORT:
                h = decode_transport(data)
                if not any(s.verifies_outgoing(data) for s in self.sessions_for(h.receiver)):
                    return "transport packet does not authenticate under any live session"
                return None
            if t is PacketType.HANDSHAKE_INIT:
                m = hw.decode_init(data)
            elif t is PacketType.HANDSHAKE_RESP:
                m = hw.decode_resp(data)  # type: ignore[assignment]
            elif t is PacketType.COOKIE_REPLY:
                hw.decode_cookie_reply(data)
                return None
            else:
                if self.relay_check is not None:
                    return self.relay_check(data)
                return f"{t.name} datagrams are not expected from this node"
            if m.mac1 == bytes(hw.MAC_LEN):
                return "handshake without mac1"
            return None
        except WireError as e:
            return f"malformed: {e}"

    def passed(self, out: list[tuple[Address, Address | None, bytes]], counters: Counters) -> list[tuple[Address, Address | None, bytes]]:
        """The datagrams of ``out`` that pass ``check``; the others are counted (audit.violations) and kept out."""
        kept = []
        for item in out:
            if self.check(item[0], item[2]):
                kept.append(item)
            else:
                counters.inc("audit.violations")
        return kept

    def check(self, dst: Address, data: bytes) -> bool:
        self.checked += 1
        reason = self.verdict(data)
        if reason is None:
            return True
        v = Violation(dst, reason, len(data))
        if len(self.violations) < 1000:
            self.violations.append(v)
        if self.strict:
            raise AuditViolation(f"refusing to send {len(data)} bytes to {dst[0]}:{dst[1]}: {reason}")
        return False
