"""Transmit: the datagrams the core hands the driver, and where each sealed datagram goes (an owned part of ``Mesh``).

A datagram for a peer goes on a path: the one given, else the peer's current one. A direct path is an address,
sent to from the socket given, else the peer's; a relay path (``ViaRelay``) wraps the datagram in a RELAY frame
sealed in our session with the relay, sent on our direct path to it (``RelayClient.wrap``). Every datagram for
a peer counts in its stats, and every direct destination our main socket sends to is noted for hole punching
(``Puncher.note_destination``: the mappings we made; the NAT tests' second socket counts its own). ``take``
hands the driver what was queued since the last call (the ``Mesh`` passes it through the encryption audit).

It holds no peer and no session of its own: peers come with each call, the relay client, the puncher and the
question "is this the NAT tests' socket?" are given at construction.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .nat.punch import Puncher
from .outbox import Outbox
from .peers.paths import Address, PathId, ViaRelay
from .peers.peer import Peer
from .relay.client import RelayClient

Datagram = tuple[Address, Address | None, bytes]  # (destination, our local socket or None, bytes)


class Transmit:
    __slots__ = ("_out", "_relay", "_punch", "_probe_socket")

    def __init__(self, relay: RelayClient, punch: Puncher, probe_socket: Callable[[Address | None], bool]) -> None:
        self._out: list[Datagram] = []
        self._relay = relay
        self._punch = punch
        self._probe_socket = probe_socket

    def __len__(self) -> int:
        return len(self._out)

    def take(self) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def seal(self, peer: Peer, frame: bytes, path: PathId | None, now: float, local: Address | None = None) -> bool:
        """Seal ``frame`` in the peer's sendable session and send it; False when it has none."""
        if (s := peer.sendable_session(now)) is None:
            return False
        self.send(peer, s.encrypt(frame, now), path, now, local)
        return True

    def send(self, peer: Peer, data: bytes, path: PathId | None, now: float, local: Address | None = None) -> None:
        """An already-sealed datagram for ``peer`` on ``path`` (None: its current path; no path: nothing sent)."""
        if (target := path or peer.endpoint) is None:
            return
        if isinstance(target, ViaRelay):
            out = Outbox()
            if not self._relay.wrap(peer, target, data, out):
                return
            for relay, frame, to, sock in out.frames:  # (one RELAY frame to the relay, on our direct path to it)
                self.seal(relay, frame, to, now, sock)
        else:
            self._out.append((target, local or peer.local, data))
            if not self._probe_socket(local):  # (the second socket's are counted where made)
                self._punch.note_destination(target, now)
        peer.stats.bytes_out += len(data)
        peer.stats.packets_out += 1

    def burst(self, peer: Peer, sealed: Sequence[bytes], now: float) -> None:
        """Datagrams for ``peer`` on its current path; a direct one takes ``send``'s work once for them all (the
        virtual network's hot path)."""
        if isinstance(peer.endpoint, ViaRelay) or peer.endpoint is None:
            for d in sealed:
                self.send(peer, d, None, now)
            return
        self._out += [(peer.endpoint, peer.local, d) for d in sealed]
        self._punch.note_destination(peer.endpoint, now)
        peer.stats.bytes_out += sum(map(len, sealed))
        peer.stats.packets_out += len(sealed)

    def exact(self, dst: Address, local: Address | None, data: bytes, now: float) -> None:
        """To exactly ``dst`` from exactly ``local`` (NAT tests): no path choice, no peer stats."""
        self._out.append((dst, local, data))
        if not self._probe_socket(local):
            self._punch.note_destination(dst, now)

    def raw(self, dst: Address, local: Address | None, data: bytes) -> None:
        """Exactly these bytes to ``dst`` from ``local``, nothing noted (a cookie reply to a sender we do not know)."""
        self._out.append((dst, local, data))
