"""Outbox: what a sub-machine asks the ``Mesh`` to do, collected as data.

A sub-machine (paths and probes, relay, hole punching, NAT tests, gossip) owns its state and never holds a
reference to ``Mesh``. Its methods take their inputs and ``now`` and put what should happen next into an
``Outbox`` the caller passes in; ``Mesh`` then performs it (seal frames in the peer's session, send datagrams
on a path, queue reliable control messages, publish events, re-arm a peer's deadline). This keeps the arrows
one way: Mesh -> sub-machine, never back.

Order is kept within each list; the Mesh performs ``frames`` and ``datagrams`` in the order they were put.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .events import Event
    from .peers.peer import Peer

from .peers.paths import Address, PathId


@dataclass(slots=True)
class Outbox:
    # (peer, plaintext frame, path or None for the peer's current path, our local socket or None)
    frames: list[tuple["Peer", bytes, PathId | None, Address | None]] = field(default_factory=list)
    # (peer, already-sealed datagram, path or None for the current path)
    datagrams: list[tuple["Peer", bytes, PathId | None]] = field(default_factory=list)
    # (peer, control message name, body): reliable, in order, never shown to applications
    controls: list[tuple["Peer", str, bytes]] = field(default_factory=list)
    events: list["Event"] = field(default_factory=list)
    # (destination, our local socket, already-sealed datagram): sent exactly there, bypassing path choice
    sends: list[tuple[Address, Address | None, bytes]] = field(default_factory=list)
    rearm: list["Peer"] = field(default_factory=list)  # peers whose deadline may have changed
    # (peer, path): an authenticated probe (PING) on that path; its answer is path evidence
    probes: list[tuple["Peer", PathId]] = field(default_factory=list)
    pumps: list["Peer"] = field(default_factory=list)  # peers whose reliable stream may send now (resume)

    def frame(self, peer: "Peer", frame: bytes, path: PathId | None = None, local: Address | None = None) -> None:
        self.frames.append((peer, frame, path, local))

    def datagram(self, peer: "Peer", data: bytes, path: PathId | None = None) -> None:
        self.datagrams.append((peer, data, path))

    def control(self, peer: "Peer", name: str, body: bytes) -> None:
        self.controls.append((peer, name, body))

    def send(self, dst: Address, local: Address | None, data: bytes) -> None:
        self.sends.append((dst, local, data))

    def event(self, e: "Event") -> None:
        self.events.append(e)

    def arm(self, peer: "Peer") -> None:
        self.rearm.append(peer)

    def probe(self, peer: "Peer", path: PathId) -> None:
        self.probes.append((peer, path))

    def pump(self, peer: "Peer") -> None:
        self.pumps.append(peer)

    def __bool__(self) -> bool:
        return bool(self.frames or self.datagrams or self.controls or self.sends or self.events or self.rearm or self.probes
                    or self.pumps)
