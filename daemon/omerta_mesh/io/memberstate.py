"""What this node keeps of an owned network's membership: ``<state>/members/<network id>.json`` (docs/membership.md).

One file per owned network (directory 0700, files 0600, written with ``atomic_write`` through the state store)::

    {"version": 1, "network": "<network id>",
     "revocations": ["<base64 of a signed revocation (core/wire/revocations.py)>", ...],
     "marks": ["<base64 of a signed use mark (core/wire/tokens.py)>", ...],
     "tokens": ["<base64 of a signed invite token this node issued (core/wire/tokens.py)>", ...],
     "enrolled": [{"token": "<token id, 32 hex digits>", "node": "<node id>",
                   "credential": "<base64 of the credential this node issued it>"}, ...]}

The store keeps signed bytes as they came and checks only their framing and bounds (at most MAX_REVOCATIONS
revocations, MAX_MARKS marks, MAX_TOKENS tokens, MAX_ENROLLED enrolments, MAX_ITEM bytes a signed item,
MAX_CREDENTIAL a credential, MAX_FILE bytes a file); signatures, who may sign and expiry are the core's
questions when it takes them back. ``save`` refuses more than it would load (UsageError), so nothing saved is
lost at the next start.

Damage never stops the daemon and never costs other state: a file that is not this layout (not JSON, a newer
version, another network's) is moved aside as ``<network id>.json.damaged-<time>-<pid>`` with a warning naming
both files, and the network starts with nothing kept (revocations come back by gossip); a damaged entry (not
base64, too long, a bad node id) is skipped and counted in one warning, the rest kept. Every other state file
and every other network's file is untouched.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..core.errors import UsageError
from ..core.ids import NetworkId, NodeId
from ..core.wire.certs import MAX_CREDENTIAL

MEMBERS_VERSION = 1
MAX_REVOCATIONS = 4096  # as CoreConfig.max_revocations
MAX_MARKS = 4096  # as CoreConfig.max_token_marks
MAX_TOKENS = 4096
MAX_ENROLLED = 4096  # each enrolment made a use mark: as many as marks
TOKEN_ID_LEN = 16
MAX_ITEM = 1024  # bytes of one signed revocation, mark or token (each is under 300)
MAX_FILE = 8 << 20
log = logging.getLogger("omerta_mesh.io.memberstate")
T = TypeVar("T")


@dataclass(frozen=True)
class Enrolled:
    """A node this node enrolled with a token, and the credential it issued it (a repeat gets the same one)."""

    token_id: bytes  # 16 bytes
    node: NodeId
    credential: bytes


@dataclass(frozen=True)
class MembersState:
    revocations: tuple[bytes, ...] = ()  # signed revocations
    marks: tuple[bytes, ...] = ()  # signed use marks
    tokens: tuple[bytes, ...] = ()  # signed tokens this node issued
    enrolled: tuple[Enrolled, ...] = ()


class MemberFiles:
    def __init__(self, directory: Path, write: Callable[[Path, bytes], None]) -> None:
        self.dir = Path(directory)
        self._write = write  # atomic, 0600, the directory made 0700, counted (StateStore._write)

    def path(self, network: NetworkId) -> Path:
        return self.dir / f"{network.text()}.json"

    def load(self, network: NetworkId) -> MembersState:
        """What was saved for ``network``; nothing (an empty state) when there is no file or it is damaged."""
        path = self.path(network)
        try:
            if not path.exists():
                return MembersState()
            if path.stat().st_size > MAX_FILE:
                raise ValueError(f"larger than {MAX_FILE} bytes")
            doc = json.loads(path.read_bytes())
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            version = doc.get("version")
            if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MEMBERS_VERSION:
                raise ValueError(f"'version' is {version!r}" + (" (written by a newer omerta-mesh)" if isinstance(version, int)
                                                                 and not isinstance(version, bool) and version > 0 else ""))
            if doc.get("network") != network.text():
                raise ValueError(f"it names network {doc.get('network')!r}")
        except OSError as e:  # unreadable, not damaged: left where it is
            log.warning("%s could not be read (%s); the network starts without it", path, e.strerror or e)
            return MembersState()
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            self._aside(path, e)
            return MembersState()
        bad = [0]
        state = MembersState(_items(doc.get("revocations"), MAX_REVOCATIONS, bad, _blob),
                             _items(doc.get("marks"), MAX_MARKS, bad, _blob), _items(doc.get("tokens"), MAX_TOKENS, bad, _blob),
                             _items(doc.get("enrolled"), MAX_ENROLLED, bad, _enrolment))
        if bad[0]:
            log.warning("%s: skipped %d damaged entries (not base64, too long, a bad node id, or beyond the bounds); the "
                        "rest is kept", path, bad[0])
        return state

    def save(self, network: NetworkId, state: MembersState) -> None:
        """Write ``state`` (StateNotSaved when the disk refuses: the previous file intact)."""
        if len(state.revocations) > MAX_REVOCATIONS or len(state.marks) > MAX_MARKS or len(state.tokens) > MAX_TOKENS \
                or len(state.enrolled) > MAX_ENROLLED \
                or any(not 0 < len(b) <= MAX_ITEM for b in (*state.revocations, *state.marks, *state.tokens)) \
                or any(len(e.token_id) != TOKEN_ID_LEN or not 0 < len(e.credential) <= MAX_CREDENTIAL for e in state.enrolled):
            raise UsageError(f"members state of {network} beyond the bounds a load takes back")
        b64 = _b64
        doc = {"version": MEMBERS_VERSION, "network": network.text(), "revocations": [b64(b) for b in state.revocations],
               "marks": [b64(b) for b in state.marks], "tokens": [b64(b) for b in state.tokens],
               "enrolled": [{"token": e.token_id.hex(), "node": e.node.text(), "credential": b64(e.credential)} for e in state.enrolled]}
        self._write(self.path(network), json.dumps(doc, indent=1).encode())

    def update(self, network: NetworkId, **fields: Any) -> None:
        """Replace some of what is saved for ``network`` (``revocations=...``, ``marks=...``), keeping the rest as it is on
        disk (StateNotSaved when the disk refuses)."""
        self.save(network, dataclasses.replace(self.load(network), **fields))

    def forget(self, network: NetworkId) -> None:
        """We left ``network``: its file goes (a missing one is fine)."""
        try:
            self.path(network).unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("%s not removed after leaving the network (%s); it is not read unless the network is joined again",
                        self.path(network), e)

    @staticmethod
    def _aside(path: Path, problem: object) -> None:
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        try:
            os.replace(path, aside)
            kept = f"kept as {aside}"
        except OSError as e:
            kept = f"left in place ({e.strerror or e}): it is not read"
        log.warning("%s is damaged (%s); %s. The network starts with no saved revocations, marks or tokens: "
                    "revocations come back from members by gossip, and no other state is affected", path, problem, kept)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _blob(value: object, most: int = MAX_ITEM) -> bytes | None:
    """Base64 text of 1 to ``most`` bytes, else None (damaged)."""
    if not isinstance(value, str) or len(value) > 4 * (most + 2) // 3:
        return None
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if 0 < len(data) <= most else None


def _items(raw: object, most: int, bad: list[int], parse: Callable[[object], T | None]) -> tuple[T, ...]:
    """The entries of list ``raw`` that ``parse`` takes, at most ``most``; the others counted in ``bad``."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        bad[0] += 1
        return ()
    out = [x for v in raw if (x := parse(v)) is not None]
    bad[0] += len(raw) - len(out) + max(0, len(out) - most)
    return tuple(out[:most])


def _enrolment(e: object) -> Enrolled | None:
    if not isinstance(e, dict) or not isinstance(e.get("node"), str) or not isinstance(e.get("token"), str):
        return None
    credential = _blob(e.get("credential"), MAX_CREDENTIAL)
    try:
        node, token_id = NodeId.parse(e["node"]), bytes.fromhex(e["token"])
    except (UsageError, ValueError):
        return None
    return None if credential is None or len(token_id) != TOKEN_ID_LEN else Enrolled(token_id, node, credential)
