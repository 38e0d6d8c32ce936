"""Persistent state on disk: identity, networks, peer cache. Every write is atomic.

Layout of a state directory (mode 0700)::

    identity        the node's Ed25519 seed (0600), see core.keys.encode_identity
    networks.json   the networks this node is in, with their keys (0600: the keys are secrets); per network
                    (docs/membership.md) also ``owner`` (node id: an owned network; absent: open), ``credential``
                    (ours there, base64), ``origin`` ("created" or "joined", with ``inviter``; absent: written
                    before this was recorded), ``epoch`` (the key's, 0 when absent; above 0 the network's ``id`` is
                    its first key's, kept), ``rekey`` (the owner's signed rotation to the key held, base64) and
                    ``previous`` (keys still accepted after a rotation: ``key``, wall-clock ``until``; docs/membership.md
                    6), ``invite`` (the omerta2- invite we joined with, until an admin enrolled us), ``open`` (true: made
                    open by this version on purpose, never claimed by itself) and ``claim`` / ``claim_credential``
                    (an open network's owner claim we follow, and the owner's certificate for us: membership.md 7):
                    ``NetworkState``
    members/<network id>.json  an owned network's revocations, use marks and tokens (io/memberstate.py)
    peers.json      known peers' endpoints, to reconnect after a restart without the invite (0600)
    addresses.json  our mesh IPs per network (what we held last: claimed again after a restart) (0600)

A network name a user cannot be served (a lone surrogate, control characters, longer than an invite
carries: written by a daemon from before names were checked) is repaired at load: the network (its key,
hence its id and membership) is kept under the repaired name, the file is rewritten, and a warning says so.

``atomic_write`` writes a temporary file in the same directory, fsyncs it, renames it over the target and
fsyncs the directory, so a crash at any moment leaves either the old or the new file, never a torn one.

A write that fails (disk full, I/O error, read-only filesystem: any OSError) is ``StateNotSaved``: "state could
not be saved: <file>: <cause>", with the fix; the old file is untouched and the temporary one removed. Callers
that change what the file records save first, and change memory only when the save succeeded (``MeshNode``'s
network changes). Saves made from the event loop (the peer cache, our mesh IPs) go through
``StateStore.background`` (``BackgroundSaves``): a failure is logged and counted, never raised into the loop, and
the save is tried again after a back-off (1 s, doubling to 60 s) until it succeeds. ``StateStore.counters``:
``state.save_failed`` (failed writes), ``state.save_retried``, ``state.save_pending`` (saves waiting for a retry).

Damage: identity and networks.json are refused with the one "damaged" message (``damaged``: the file, what
is wrong, what to do), never a traceback. peers.json and addresses.json are caches: a damaged file is
dropped with a warning, and a damaged peer-cache entry is skipped (counted in a warning), the rest kept.
A missing identity file while networks.json holds networks is refused too (the node would come back as a
stranger to its peers) unless ``new_identity`` is asked for (``omerta-meshd --new-identity``).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import ipaddress
import json
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.entropy import Entropy, SystemEntropy
from ..core.errors import InviteError, MeshError, UsageError
from ..core.ids import NetworkId, NodeId
from ..core.keys import Identity, decode_identity, encode_identity
from ..core.network import NETWORK_KEY_LEN, Network
from ..core.session.keyring import MAX_PREVIOUS
from ..core.wire.certs import MAX_CREDENTIAL
from ..core.wire.claim import CLAIM_LEN
from ..core.wire.invite import check_network_name, decode_invite, repair_network_name
from ..core.wire.rekey import REKEY_LEN
from .memberstate import MemberFiles

STATE_VERSION = 1
ORIGINS = ("created", "joined")
MAX_EPOCH = 2**32 - 1
MAX_INVITE = 4096  # characters of a saved invite (a version 2 one is at most ~1,300)
log = logging.getLogger("omerta_mesh.io.store")


@dataclass(frozen=True)
class NetworkState:
    """One entry of networks.json: the network (key, name, owner) and what this node keeps of it besides."""

    network: Network
    credential: bytes | None = None  # our credential in an owned network (core/wire/certs.py), as issued
    origin: str | None = None  # "created", "joined"; None: an earlier version wrote the entry
    inviter: NodeId | None = None  # who invited us (origin "joined")
    rekey: bytes | None = None  # the owner's signed rotation to the key held (core/wire/rekey.py); None at epoch 0
    previous: tuple[tuple[bytes, float], ...] = ()  # after a rotation: keys still accepted, each until (wall clock)
    invite: str | None = None  # an owned network's invite we joined with, until we hold a credential (a restart resumes)
    stays_open: bool = False  # created open on purpose (``--open``): never claimed by itself at start (docs/membership.md 7)
    claim: bytes | None = None  # an open network's owner claim we follow, until enforced (core/wire/claim.py)
    claim_credential: bytes | None = None  # the claim's owner's certificate for us, set when it is enforced


class StateError(MeshError):
    """A state file is unreadable, or could not be written; the message names the file and what to do."""


class StateNotSaved(StateError):
    """A state file could not be written (``cause``: the OSError); the previous file is intact."""

    def __init__(self, path: Path, cause: OSError) -> None:
        self.path, self.cause = Path(path), cause
        why = cause.strerror or str(cause) or type(cause).__name__
        super().__init__(f"state could not be saved: {self.path}: {why[:1].lower()}{why[1:]}")

    @property
    def fix(self) -> str:
        d = self.path.parent
        if self.cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"free space on the filesystem of the state directory {d} (df -h {d}), then try again"
        if self.cause.errno == errno.EROFS:
            return f"the filesystem of the state directory {d} is read-only: remount it read-write, then try again"
        if self.cause.errno in (errno.EACCES, errno.EPERM):
            return f"give the daemon's user write access to the state directory {d}, then try again"
        return f"check the disk holding the state directory {d} (dmesg, df -h {d}), then try again"


RESTORE_OR_MOVE = "restore it from a backup, or move it aside"


def damaged(what: str | Path, problem: object, fix: str = RESTORE_OR_MOVE) -> StateError:
    """The one "damaged state file" error: which file, what is wrong with it, what to do."""
    return StateError(f"{what} is damaged ({problem}); {fix}")


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; StateNotSaved (the old file intact) when the disk refuses."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise StateNotSaved(path, e) from e
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise StateNotSaved(path, e) from e
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:  # the new file is in place; only its durability across a crash is in doubt
        log.warning("%s written, but syncing its directory failed (%s): a crash now could bring back the old file", path, e)


RETRY_FIRST = 1.0  # seconds before a failed background save is tried again; doubled each time
RETRY_MAX = 60.0


class BackgroundSaves:
    """Saves made from the event loop, which must never raise into it (``save(what, write)``).

    ``write`` writes what is current when it is called. A write that fails (StateNotSaved) is logged (a warning
    the first time, then debug) and counted, and called again after a back-off (``first`` seconds, doubling up to
    ``most``) until it succeeds; asking for a save that is waiting for its retry only replaces the write the
    retry will make."""

    def __init__(self, first: float = RETRY_FIRST, most: float = RETRY_MAX) -> None:
        self.first, self.most = first, most
        self.failed = 0  # failed attempts
        self.retried = 0  # attempts made by a retry
        self._writes: dict[str, Callable[[], None]] = {}  # saves that failed, waiting for their retry
        self._failures: dict[str, int] = {}  # consecutive failures of each of those
        self._timers: dict[str, asyncio.TimerHandle] = {}

    @property
    def pending(self) -> list[str]:
        return list(self._writes)

    def save(self, what: str, write: Callable[[], None]) -> bool:
        """``write()`` now, or at the retry already waiting; True when it was written now."""
        waiting = what in self._writes
        self._writes[what] = write
        return False if waiting else self._attempt(what)

    def retry(self, what: str, write: Callable[[], None], error: StateNotSaved) -> None:
        """A write of ``what`` made elsewhere (a thread) failed with ``error``: counted, and ``write`` is called
        after the back-off, not now (or replaces the write of a retry already waiting)."""
        waiting = what in self._writes
        self._writes[what] = write
        if not waiting:
            self._failed(what, error)

    def _attempt(self, what: str) -> bool:
        try:
            self._writes[what]()
        except StateNotSaved as e:
            self._failed(what, e)
            return False
        del self._writes[what]
        n = self._failures.pop(what, 0)
        if n:
            log.info("%s saved after %d failed attempts", what, n)
        return True

    def _failed(self, what: str, e: StateNotSaved) -> None:
        self.failed += 1
        n = self._failures[what] = self._failures.get(what, 0) + 1
        delay = min(self.most, self.first * 2 ** min(n - 1, 30))
        log.log(logging.WARNING if n == 1 else logging.DEBUG, "%s not saved: %s; trying again in %g s (%s)",
                what, e, delay, e.fix)
        try:
            self._timers[what] = asyncio.get_running_loop().call_later(delay, self._retry, what)
        except RuntimeError:  # no loop (a caller outside one): the next save of it tries again
            pass

    def _retry(self, what: str) -> None:
        self._timers.pop(what, None)
        if what in self._writes:
            self.retried += 1
            self._attempt(what)

    def close(self, *last: tuple[str, Callable[[], None]]) -> None:
        """At stop: the retries are cancelled, and each save still pending, and each of ``last`` (what, write), is
        written once; a failure is logged as an error (there is no later)."""
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        for what, write in {**self._writes, **dict(last)}.items():
            try:
                write()
            except StateNotSaved as e:
                self.failed += 1
                log.error("%s not saved at stop: %s (%s)", what, e, e.fix)
        self._writes.clear()
        self._failures.clear()


class StateStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except PermissionError:
            raise StateError(f"cannot create state directory {self.dir}: permission denied; "
                             "run as root or pass a writable --state-dir") from None
        mode = stat.S_IMODE(self.dir.stat().st_mode)
        if mode & 0o077:
            os.chmod(self.dir, 0o700)
        self.background = BackgroundSaves()  # saves made from the event loop: retried, never raised
        self.save_failures = 0  # every failed write of a state file
        self._states: dict[bytes, NetworkState] = {}  # network id -> the entry last loaded or saved
        self.members = MemberFiles(self.dir / "members", self._write)  # owned networks' revocations, marks, tokens

    def counters(self) -> dict[str, int]:
        return {"state.save_failed": self.save_failures, "state.save_retried": self.background.retried,
                "state.save_pending": len(self.background.pending)}

    def _write(self, path: Path, data: bytes) -> None:
        try:
            if path.parent != self.dir:  # a subdirectory (members/): made 0700 when first written to
                try:
                    path.parent.mkdir(mode=0o700, exist_ok=True)
                except OSError as e:
                    raise StateNotSaved(path, e) from e
            atomic_write(path, data, 0o600)
        except StateNotSaved:
            self.save_failures += 1
            raise

    @property
    def identity_path(self) -> Path:
        return self.dir / "identity"

    @property
    def networks_path(self) -> Path:
        return self.dir / "networks.json"

    @property
    def peers_path(self) -> Path:
        return self.dir / "peers.json"

    # ---- identity
    def load_identity(self, entropy: Entropy | None = None, new_identity: bool = False) -> Identity:
        """The node's identity, created (and saved 0600) on first use.

        A damaged identity file, or a missing one while networks.json holds networks, is refused: a new
        identity would make this node a stranger to its peers. ``new_identity`` (``--new-identity``) makes a
        new one in those cases (a damaged file is kept aside) and logs the change; a valid file is kept."""
        p = self.identity_path
        old: str | None = None  # the node id being replaced, when known
        why = ""  # why a new identity is made although this node had one: for the warning
        if p.exists():
            data = p.read_bytes()
            try:
                ident = decode_identity(data)
            except ValueError as e:
                if not new_identity:
                    raise damaged(f"identity file {p}", e, "restore it from a backup, or start with --new-identity "
                                  "to create a new one (the node id will change)") from None
                old = _claimed_node_id(data)
                aside = p.with_name(f"identity.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
                os.replace(p, aside)
                why = f"the damaged identity file is kept as {aside}"
            else:
                if new_identity:
                    log.warning("--new-identity ignored: identity file %s is valid (node id %s); to replace it, "
                                "move it aside and start with --new-identity", p, ident.node_id.text())
                return ident
        elif self.load_networks():
            if not new_identity:
                raise StateError(f"identity file {p} is missing but the state has networks: this node would come back "
                                 "as a stranger; restore the file, or start with --new-identity to make a new one")
            why = "the identity file was missing"
        ident = Identity.generate(entropy or SystemEntropy())
        self._write(p, encode_identity(ident))
        if why:
            log.warning("new node identity (--new-identity): node id %s, %s (%s); peers see a new node in this "
                        "node's networks", ident.node_id.text(), f"old node id {old}" if old else "old node id unknown", why)
        return ident

    # ---- networks
    def load_networks(self) -> list[Network]:
        return [st.network for st in self.load_network_states()]

    def load_network_states(self) -> list[NetworkState]:
        """networks.json's entries; one without ``owner`` (an earlier version's) is an open network."""
        path = self.networks_path
        doc = self._read_json(path, {"version": STATE_VERSION, "networks": []})
        fix = "restore it from a backup, or move it aside and re-join your networks"
        nets = doc.get("networks")
        if not isinstance(nets, list):
            raise damaged(path, "'networks' is not a list", fix)
        out = []
        repaired = False
        for i, n in enumerate(nets):
            if not isinstance(n, dict) or not isinstance(n.get("key"), str) or not isinstance(n.get("name", ""), str):
                raise damaged(path, f"network {i + 1} is not {{'key': text, 'name': text}}", fix)
            try:
                st = _network_state(n, self._repaired_name(n.get("name", ""), n.get("id")))
            except ValueError as e:  # (binascii.Error is one)
                raise damaged(path, f"network {i + 1}: {e}", fix) from None
            repaired = repaired or st.network.name != n.get("name", "")
            out.append(st)
        self._states = {st.network.id.raw: st for st in out}
        if repaired:
            self.save_networks(out)
        return out

    def network_state(self, network: NetworkId) -> NetworkState | None:
        """The entry of ``network`` last loaded or saved."""
        return self._states.get(network.raw)

    def _repaired_name(self, name: str, net_id: object) -> str:
        """``name`` if it can be served; else repaired (core.wire.invite's rule), with a warning naming the file."""
        try:
            check_network_name(name)
            return name
        except ValueError as e:
            problem = str(e)
        fixed = repair_network_name(name)
        log.warning("%s: network %s had a name that cannot be served (%s: %a); kept the network (key, id and "
                    "membership unchanged) under the name %r and rewrote the file", self.networks_path, net_id, problem, name, fixed)
        return fixed

    def save_networks(self, networks: "Sequence[Network | NetworkState]") -> None:
        """Write networks.json. A bare ``Network`` keeps what the entry last loaded or saved for its id holds
        besides the network (credential, origin, rotation), so callers that only change the list lose nothing."""
        states = [n if isinstance(n, NetworkState) else _kept(self._states.get(n.id.raw), n) for n in networks]
        doc = {"version": STATE_VERSION, "networks": [_network_entry(st) for st in states]}
        self._write(self.networks_path, json.dumps(doc, indent=1).encode())
        self._states = {st.network.id.raw: st for st in states}

    # ---- our mesh IPs (a cache of what we held: damaged, we derive them again)
    @property
    def addresses_path(self) -> Path:
        return self.dir / "addresses.json"

    def load_addresses(self) -> dict[str, tuple[str | None, str | None]]:
        """network id (text) -> (IPv4, IPv6) we held last."""
        doc = self._read_json(self.addresses_path, {"version": STATE_VERSION, "networks": {}}, damaged_ok=True)
        nets = doc.get("networks")
        out: dict[str, tuple[str | None, str | None]] = {}
        if isinstance(nets, dict):
            for k, v in nets.items():
                if isinstance(v, dict):
                    v4, v6 = v.get("v4"), v.get("v6")
                    out[str(k)] = (v4 if isinstance(v4, str) else None, v6 if isinstance(v6, str) else None)
        return out

    def save_addresses(self, addresses: dict[str, tuple[str | None, str | None]]) -> None:
        doc = {"version": STATE_VERSION, "networks": {k: {"v4": a, "v6": b} for k, (a, b) in sorted(addresses.items())}}
        self._write(self.addresses_path, json.dumps(doc, indent=1).encode())

    # ---- peer cache
    def load_peers(self) -> dict[str, Any]:
        """The peer cache, every entry checked (``peer_entry``): damaged entries are skipped with a counted
        warning, the rest kept; a damaged file counts as empty (a cache: it only costs a reconnect)."""
        path = self.peers_path
        doc = self._read_json(path, {"version": STATE_VERSION, "peers": []}, damaged_ok=True)
        raw = doc.get("peers")
        if not isinstance(raw, list):
            self._cache_damaged(path, "'peers' is not a list")
            raw = []
        good: list[dict[str, Any]] = []
        dropped = 0  # damaged endpoints of entries that are kept
        for e in raw:
            entry, bad = peer_entry(e)
            if entry is not None:
                good.append(entry)
                dropped += bad
        if len(good) < len(raw) or dropped:
            log.warning("%s: skipped %d damaged entries of %d, and %d damaged endpoints of the kept ones (a bad port, "
                        "address, id or type); the rest of the peer cache is kept, and those peers come back through "
                        "the invite or gossip", path, len(raw) - len(good), len(raw), dropped)
        return {"version": STATE_VERSION, "peers": good}

    def save_peers(self, doc: dict[str, Any]) -> None:
        self._write(self.peers_path, json.dumps({"version": STATE_VERSION, **doc}).encode())

    def _read_json(self, path: Path, default: dict[str, Any], damaged_ok: bool = False) -> dict[str, Any]:
        if not path.exists():
            return default
        try:
            doc = json.loads(path.read_bytes())
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            version = doc.get("version", STATE_VERSION)
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise ValueError(f"'version' is {version!r}, not a state version")
            if version > STATE_VERSION:
                raise ValueError(f"written by a newer omerta-mesh (state version {version})")
            return doc
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            if damaged_ok:  # a cache: losing it only costs a reconnect through the invite
                self._cache_damaged(path, e)
                return default
            raise damaged(path, e) from None

    @staticmethod
    def _cache_damaged(path: Path, problem: object) -> None:
        log.warning("%s is damaged (%s); it is only a cache: starting without it (it is written again)", path, problem)


def _kept(old: NetworkState | None, net: Network) -> NetworkState:
    return NetworkState(net) if old is None else replace(old, network=net)


def _network_entry(st: NetworkState) -> dict[str, Any]:
    n = st.network
    entry: dict[str, Any] = {"id": str(n.id), "name": n.name, "key": base64.b64encode(n.key).decode()}
    if n.owner is not None:
        entry["owner"] = n.owner.text()
    if st.credential:
        entry["credential"] = base64.b64encode(st.credential).decode()
    if st.origin is not None:
        entry["origin"] = st.origin
    if st.inviter is not None:
        entry["inviter"] = st.inviter.text()
    if n.epoch:
        entry["epoch"] = n.epoch
    if st.rekey:
        entry["rekey"] = base64.b64encode(st.rekey).decode()
    if st.previous:
        entry["previous"] = [{"key": base64.b64encode(k).decode(), "until": int(u)} for k, u in st.previous]
    if st.invite:
        entry["invite"] = st.invite
    if st.stays_open:
        entry["open"] = True
    for field, blob in (("claim", st.claim), ("claim_credential", st.claim_credential)):
        if blob:
            entry[field] = base64.b64encode(blob).decode()
    return entry


def _network_state(n: dict[str, Any], name: str) -> NetworkState:
    """An entry of networks.json (its key and name checked by the caller). ValueError: a field is damaged."""
    owner, cred, origin, inviter, epoch = n.get("owner"), n.get("credential"), n.get("origin"), n.get("inviter"), n.get("epoch", 0)
    if origin is not None and origin not in ORIGINS:
        raise ValueError(f"'origin' is {origin!r}, not one of {', '.join(ORIGINS)}")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"'epoch' is {epoch!r}, not a whole number 0-{MAX_EPOCH}")
    rekey, previous = n.get("rekey"), n.get("previous", [])
    if rekey is not None and (not isinstance(rekey, str) or len(rekey) > 4 * REKEY_LEN // 3 + 4 or not epoch or owner is None):
        raise ValueError("'rekey' is not base64 of a key rotation of an owned network past epoch 0")
    if not isinstance(previous, list) or len(previous) > MAX_PREVIOUS or not all(
            isinstance(p, dict) and isinstance(p.get("key"), str) and len(p["key"]) <= 44 and isinstance(p.get("until"), int)
            and not isinstance(p["until"], bool) and 0 <= p["until"] < 1 << 64 for p in previous):
        raise ValueError(f"'previous' is not a list of at most {MAX_PREVIOUS} {{'key': base64, 'until': seconds}}")
    prev = tuple((base64.b64decode(p["key"], validate=True), float(p["until"])) for p in previous)
    if any(len(k) != NETWORK_KEY_LEN for k, _ in prev):
        raise ValueError("a 'previous' key is not 32 bytes")
    fixed = None
    if epoch:
        if owner is None:
            raise ValueError("'epoch' above 0 in an open network (only an owned network's key is rotated)")
        try:
            fixed = NetworkId.parse(str(n.get("id")))
        except (ValueError, UsageError):
            raise ValueError(f"'id' is {n.get('id')!r}, not a network id (a rotated network's id is kept)") from None
    credential = None
    if cred is not None:
        if not isinstance(cred, str) or len(cred) > 4 * MAX_CREDENTIAL // 3 + 4:
            raise ValueError("'credential' is not base64 of at most a credential's size")
        credential = base64.b64decode(cred, validate=True) or None
    invite = n.get("invite")
    if invite is not None and (not isinstance(invite, str) or len(invite) > MAX_INVITE or _invite_network(invite) != n.get("id")):
        raise ValueError("'invite' is not an invite to this owned network")
    stays_open, claim, claim_cred = n.get("open", False), n.get("claim"), n.get("claim_credential")
    if not isinstance(stays_open, bool) or stays_open and owner is not None:
        raise ValueError(f"'open' is {stays_open!r}, not true or false (and only in an open network)")
    for field, blob, most in (("claim", claim, CLAIM_LEN), ("claim_credential", claim_cred, MAX_CREDENTIAL)):
        if blob is not None and (not isinstance(blob, str) or len(blob) > 4 * most // 3 + 4 or owner is not None):
            raise ValueError(f"'{field}' is not base64 of an owner claim's part in an open network")
    net = Network(base64.b64decode(n["key"], validate=True), name, _node_field(n, "owner", owner), fixed, epoch)
    return NetworkState(net, credential, origin, _node_field(n, "inviter", inviter),
                        base64.b64decode(rekey, validate=True) if rekey else None, prev, invite, stays_open,
                        base64.b64decode(claim, validate=True) if claim else None,
                        base64.b64decode(claim_cred, validate=True) if claim_cred else None)


def _invite_network(text: str) -> str | None:
    """The id (text) of the owned network a version 2 invite is for; None for anything else."""
    try:
        inv = decode_invite(text)
    except InviteError:
        return None
    return str(inv.network_id) if inv.token is not None else None


def _node_field(n: dict[str, Any], field: str, value: object) -> NodeId | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{field}' is not a node id")
    try:
        return NodeId.parse(value)
    except UsageError as e:
        raise ValueError(f"'{field}': {e}") from None


def peer_entry(e: object) -> tuple[dict[str, Any] | None, int]:
    """A peer-cache entry ``{"network": id, "node": id, "endpoints": [[ip, port], ...]}`` with every field
    checked (ids parse, IP addresses, ports 1-65535), and how many of its endpoints were damaged (dropped).
    None when the entry is damaged: a bad id or type, or no good endpoint left of damaged ones. Relay
    pseudo-addresses (``"relay:<id>"``) of caches from before ViaRelay are dropped, not counted as damage."""
    if not isinstance(e, dict):
        return None, 0
    network, node, endpoints = e.get("network"), e.get("node"), e.get("endpoints")
    if not isinstance(network, str) or not isinstance(node, str) or not isinstance(endpoints, list):
        return None, 0
    try:
        NetworkId.parse(network)
        NodeId.parse(node)
    except (UsageError, ValueError):
        return None, 0
    eps: list[list[Any]] = []
    bad = 0
    for ep in endpoints:
        if isinstance(ep, list) and len(ep) == 2 and isinstance(ep[0], str) and ep[0].startswith("relay:"):
            continue
        if _endpoint_ok(ep):
            eps.append(list(ep))
        else:
            bad += 1
    if bad and not eps:
        return None, bad
    return {"network": network, "node": node, "endpoints": eps}, bad


def _endpoint_ok(ep: object) -> bool:
    """``[ip, port]``: an IP address (text) and a port 1-65535 (an integer, not a bool or float)."""
    if not isinstance(ep, list) or len(ep) != 2:
        return False
    host, port = ep
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _claimed_node_id(data: bytes) -> str | None:
    """The node id a (damaged) identity file names on its ``node-id:`` line, if one parses."""
    try:
        for line in data.decode("ascii").splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == "node-id":
                return NodeId.parse(value.strip()).text()
    except (UnicodeDecodeError, UsageError, ValueError):
        pass
    return None
