"""An established session: one pair of transport keys with its counters and replay window.

A peer holds up to three of these (``previous``, ``current``, ``next``; see ``peers/peer.py``), so that
no packet is lost across a rekey. The session only encrypts and decrypts transport datagrams; choosing
which session to use, and when to rekey, is the peer's and the mesh's business.
"""

from __future__ import annotations

from typing import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import DropReason
from ..wire.packet import TRANSPORT_HEADER, TRANSPORT_HEADER_LEN, TRANSPORT_OVERHEAD, VERSION, PacketType
from .replay import ReplayWindow

_ZERO4 = b"\x00\x00\x00\x00"
_TYPE = int(PacketType.TRANSPORT)


class Session:
    __slots__ = (
        "local_index",
        "remote_index",
        "initiator",
        "created_at",
        "send_counter",
        "replay",
        "confirmed",
        "_send",
        "_recv",
        "_send_key",
        "_head",
        "last_sent_at",
        "last_received_at",
    )

    def __init__(
        self,
        *,
        local_index: int,
        remote_index: int,
        send_key: bytes,
        recv_key: bytes,
        initiator: bool,
        created_at: float,
        replay_window: int = 2048,
    ) -> None:
        self.local_index = local_index
        self.remote_index = remote_index
        self.initiator = initiator
        self.created_at = created_at
        self.send_counter = 0
        self.replay = ReplayWindow(replay_window)
        # The initiator may send at once; the responder's session is confirmed by the first packet it
        # receives under it (WireGuard's rule), which also proves the initiator holds the keys.
        self.confirmed = initiator
        self._send = ChaCha20Poly1305(send_key)
        self._recv = ChaCha20Poly1305(recv_key)
        self._send_key = send_key
        self._head = TRANSPORT_HEADER.pack(_TYPE, VERSION, remote_index, 0)[:8]  # type, version, 0 0, receiver
        self.last_sent_at = created_at
        self.last_received_at = created_at

    def age(self, now: float) -> float:
        return now - self.created_at

    def older_than(self, limit: float, now: float) -> bool:
        """Written as a deadline comparison so it agrees exactly with the deadline ``created_at + limit``."""
        return now >= self.created_at + limit

    def encrypt(self, plaintext: bytes, now: float) -> bytes:
        """A transport datagram carrying ``plaintext``; advances the send counter."""
        counter = self.send_counter
        self.send_counter = counter + 1
        self.last_sent_at = now
        c = counter.to_bytes(8, "little")
        head = self._head + c
        return head + self._send.encrypt(_ZERO4 + c, plaintext, head)

    def encrypt_many(self, frames: Sequence[bytes], now: float) -> list[bytes]:
        """``encrypt`` for each frame, in order (the virtual network's fragments: one call, fewer lookups)."""
        counter = self.send_counter
        self.send_counter = counter + len(frames)
        self.last_sent_at = now
        prefix, seal, out = self._head, self._send.encrypt, []
        for f in frames:
            c = counter.to_bytes(8, "little")
            head = prefix + c
            out.append(head + seal(_ZERO4 + c, f, head))
            counter += 1
        return out

    def decrypt(self, data: bytes, counter: int, now: float) -> bytes | DropReason:
        """The plaintext of a transport datagram whose header was already parsed, or why it was dropped."""
        if not self.replay.would_accept(counter):
            return DropReason.REPLAYED
        try:
            plain = self._recv.decrypt(
                _ZERO4 + counter.to_bytes(8, "little"), data[TRANSPORT_HEADER_LEN:], data[:TRANSPORT_HEADER_LEN]
            )
        except InvalidTag:
            return DropReason.DECRYPT_FAILED
        if not self.replay.check_and_update(counter):  # pragma: no cover - would_accept said yes
            return DropReason.REPLAYED
        self.last_received_at = now
        self.confirmed = True
        return plain

    def verifies_outgoing(self, data: bytes) -> bool:
        """For the encryption audit: does this outgoing datagram authenticate under our send key?"""
        if len(data) < TRANSPORT_OVERHEAD:
            return False
        counter = int.from_bytes(data[8:16], "little")
        try:
            ChaCha20Poly1305(self._send_key).decrypt(
                _ZERO4 + counter.to_bytes(8, "little"), data[TRANSPORT_HEADER_LEN:], data[:TRANSPORT_HEADER_LEN]
            )
        except InvalidTag:
            return False
        return True
