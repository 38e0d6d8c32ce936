"""An established session: one pair of transport keys with its counters and replay window.

A peer holds up to three of these (``previous``, ``current``, ``next``; see ``peers/peer.py``), so that
no packet is lost across a rekey. The session only encrypts and decrypts transport datagrams; choosing
which session to use, and when to rekey, is the peer's and the mesh's business.

Two ciphers (``wire/packet.py``): ChaCha20-Poly1305 under the Noise transport keys, and AES-256-GCM under keys
derived from them for AES alone (keyed BLAKE2s of a fixed label: a key is never used by two algorithms). Every
session opens both (the header's byte 2 says which); it seals with AES once ``use_aes`` is on, which the peer
turns on when the other side's signed record accepts AES (``Peer.set_features``).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..errors import DropReason
from ..wire.packet import TRANSPORT_AES, TRANSPORT_HEADER, TRANSPORT_HEADER_LEN, TRANSPORT_OVERHEAD, VERSION, PacketType
from .replay import ReplayWindow

_ZERO4 = b"\x00\x00\x00\x00"
_TYPE = int(PacketType.TRANSPORT)
_AES_LABEL = b"omerta-mesh transport AES-256-GCM v1"


def aes_key(key: bytes) -> bytes:
    """The AES-256-GCM key of a direction whose Noise transport key is ``key``."""
    return hashlib.blake2s(_AES_LABEL, key=key).digest()


def _aead(key: bytes, aes: bool) -> AESGCM | ChaCha20Poly1305:
    return AESGCM(aes_key(key)) if aes else ChaCha20Poly1305(key)


class Session:
    __slots__ = (
        "local_index",
        "remote_index",
        "initiator",
        "created_at",
        "send_counter",
        "replay",
        "confirmed",
        "aes",
        "_seal",
        "_recv",
        "_recv_aes",
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
        self.aes = False  # sealing with AES-256-GCM (``use_aes``); both ciphers are always opened
        self._seal = ChaCha20Poly1305(send_key).encrypt
        self._recv = ChaCha20Poly1305(recv_key)
        self._recv_aes = _aead(recv_key, True)
        self._send_key = send_key
        self._head = bytes((_TYPE, VERSION, 0, 0)) + remote_index.to_bytes(4, "little")  # type, version, flags 0, receiver
        self.last_sent_at = created_at
        self.last_received_at = created_at

    def use_aes(self, on: bool) -> None:
        """Seal with AES-256-GCM from now on (``on``: the peer's record accepts it), or with ChaCha20-Poly1305."""
        if on != self.aes:
            self.aes = on
            self._seal = _aead(self._send_key, on).encrypt
            self._head = bytes((_TYPE, VERSION, TRANSPORT_AES if on else 0, 0)) + self._head[4:]

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
        return head + self._seal(_ZERO4 + c, plaintext, head)

    def encrypt_many(self, frames: Sequence[bytes], now: float) -> list[bytes]:
        """``encrypt`` for each frame, in order (the virtual network's fragments: one call, fewer lookups)."""
        counter = self.send_counter
        self.send_counter = counter + len(frames)
        self.last_sent_at = now
        prefix, seal, out = self._head, self._seal, []
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
            plain = (self._recv_aes if data[2] else self._recv).decrypt(
                _ZERO4 + counter.to_bytes(8, "little"), data[TRANSPORT_HEADER_LEN:], data[:TRANSPORT_HEADER_LEN]
            )
        except InvalidTag:
            return DropReason.DECRYPT_FAILED
        if not self.replay.check_and_update(counter):  # pragma: no cover - would_accept said yes
            return DropReason.REPLAYED
        self.last_received_at = now
        self.confirmed = True
        return plain

    def open_many(self, datagrams: Sequence[bytes], now: float) -> list[bytes | DropReason]:
        """``decrypt`` for the leading datagrams of ``datagrams`` whose transport header is well formed and names
        this session (a GRO run's fragments: one call, the ciphertext read in place), in order; the list ends at the
        first other one. Each is checked against and then recorded in the replay window."""
        accept, update = self.replay.would_accept, self.replay.check_and_update
        aes, chacha = self._recv_aes.decrypt, self._recv.decrypt
        ours, unpack = self.local_index, TRANSPORT_HEADER.unpack_from
        out: list[bytes | DropReason] = []
        opened = False
        for d in datagrams:
            if len(d) < TRANSPORT_OVERHEAD:
                break
            kind, ver, index, counter = unpack(d)
            if index != ours or kind != _TYPE or ver != VERSION or d[2] > TRANSPORT_AES or d[3]:
                break
            if not accept(counter):
                out.append(DropReason.REPLAYED)
                continue
            mv = memoryview(d)
            try:
                plain = (aes if d[2] else chacha)(_ZERO4 + d[8:16], mv[TRANSPORT_HEADER_LEN:], mv[:TRANSPORT_HEADER_LEN])
            except InvalidTag:
                out.append(DropReason.DECRYPT_FAILED)
                continue
            update(counter)
            out.append(plain)
            opened = True
        if opened:
            self.last_received_at = now
            self.confirmed = True
        return out

    def verifies_outgoing(self, data: bytes) -> bool:
        """For the encryption audit: does this outgoing datagram authenticate under our send key?"""
        if len(data) < TRANSPORT_OVERHEAD:
            return False
        counter = int.from_bytes(data[8:16], "little")
        try:
            _aead(self._send_key, bool(data[2])).decrypt(
                _ZERO4 + counter.to_bytes(8, "little"), data[TRANSPORT_HEADER_LEN:], data[:TRANSPORT_HEADER_LEN]
            )
        except InvalidTag:
            return False
        return True
