"""Spool: the daemon's channel inboxes on disk, so a message acknowledged to its sender survives a crash.

One append-only file per channel in ``<state>/inbox/`` (directory 0700, files 0600), named by the channel's
UTF-8 in hex plus ``.spool``. A file is a sequence of records::

    | body length (u32 LE) | CRC-32 of the body (u32 LE) | body ... |

    body of a message:  | 1 | network id (10) | node id (32) | data ... |
    body of a take:     | 2 | count (u32 LE) |          (the client received the oldest ``count`` messages left)

``add`` only buffers a message; ``sync`` writes everything buffered (one write per file) and fdatasyncs it. The
daemon runs ``sync`` before each batch of datagrams leaves (``Driver.before_send``), so no acknowledgement
is sent before what it acknowledges is on disk: one write and one fdatasync per channel per loop wake-up,
however many messages came in it. ``taken`` records that the client received messages, before the client
gets them (a crash after that loses them only if the reply itself is lost); a file whose messages were all
received is truncated, and one that is mostly taken records is rewritten (``atomic_write``).

``load`` reads every file at start: messages not yet received, in order. A damaged tail (a record cut short or
failing its CRC: a crash while writing, a bad disk) is cut off with a warning; what came before it is kept. A
file with nothing left to receive is removed. A write that fails is raised as OSError to the caller (the
inboxes refuse messages then, rather than acknowledge what they could not keep).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

from ..core.events import ChannelMessage
from ..core.ids import NETWORK_ID_LEN, NetworkId, NodeId
from ..core.wire.frames import check_channel
from .store import StateError, StateNotSaved, atomic_write

log = logging.getLogger("omerta_mesh.io.spool")
_HEAD = struct.Struct("<II")
_MSG, _TAKE = 1, 2
_MSG_HEAD = 1 + NETWORK_ID_LEN + 32
MAX_RECORD = 4 << 20  # a message is at most 1 MiB; a longer record is damage
COMPACT_AT = 1 << 20  # rewrite a file when at least this many bytes of it are messages already received


def _record(body: bytes) -> bytes:
    return _HEAD.pack(len(body), zlib.crc32(body)) + body


def message_record(m: ChannelMessage) -> bytes:
    return _record(bytes((_MSG,)) + m.network.raw + m.peer.raw + m.data)


def _file_name(channel: str) -> str:
    return channel.encode("utf-8").hex() + ".spool"


def parse(data: bytes, channel: str) -> tuple[list[ChannelMessage], int, int]:
    """The messages left to receive in a spool file's bytes, the length of its sound part, and the bytes of it
    that are messages already received or take records (what a rewrite would save)."""
    msgs: list[tuple[ChannelMessage, int]] = []
    first = 0  # index of the oldest message not yet received
    pos = dead = 0
    while pos + _HEAD.size <= len(data):
        n, crc = _HEAD.unpack_from(data, pos)
        body = data[pos + _HEAD.size : pos + _HEAD.size + n]
        if n > MAX_RECORD or len(body) != n or zlib.crc32(body) != crc or not body:
            break
        size = _HEAD.size + n
        if body[0] == _MSG and n >= _MSG_HEAD:
            net, node = NetworkId(body[1 : 1 + NETWORK_ID_LEN]), NodeId(body[1 + NETWORK_ID_LEN : _MSG_HEAD])
            msgs.append((ChannelMessage(net, node, channel, body[_MSG_HEAD:]), size))
        elif body[0] == _TAKE and n == 5:
            count = min(int.from_bytes(body[1:5], "little"), len(msgs) - first)
            dead += size + sum(s for _, s in msgs[first : first + count])
            first += count
        else:
            break
        pos += size
    return [m for m, _ in msgs[first:]], pos, dead


class Spool:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self._fds: dict[str, int] = {}
        self._pending: dict[str, list[bytes]] = {}
        self.syncs = 0  # fdatasync calls made for messages (one per file per batch)

    def _path(self, channel: str) -> Path:
        return self.dir / _file_name(channel)

    def load(self) -> dict[str, list[ChannelMessage]]:
        """Every channel's messages not yet received (files left empty are removed); creates the directory.
        StateError when the directory cannot be read."""
        out: dict[str, list[ChannelMessage]] = {}
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            for path in sorted(self.dir.glob("*.spool")):
                if (got := self._load(path)) is not None:
                    out[got[0]] = got[1]
            return out
        except OSError as e:
            raise StateError(f"the inbox spool {self.dir} cannot be read ({e.strerror or e}); check the disk and the "
                             "directory's owner, or move the directory away (its messages are lost then)") from None

    def _load(self, path: Path) -> tuple[str, list[ChannelMessage]] | None:
        try:
            channel = bytes.fromhex(path.name[: -len(".spool")]).decode("utf-8")
            check_channel(channel)
        except ValueError as e:
            log.warning("%s: not a channel's inbox (%s); left alone", path, e)
            return None
        data = path.read_bytes()
        msgs, sound, dead = parse(data, channel)
        if sound < len(data):
            log.warning("%s: damaged after byte %d (%d bytes cut off); the %d messages before it are kept",
                        path, sound, len(data) - sound, len(msgs))
            os.truncate(path, sound)  # (needs no free space) later records must not follow a torn one
        if not msgs:
            path.unlink()
            return None
        if dead:
            try:
                atomic_write(path, b"".join(message_record(m) for m in msgs))
            except StateNotSaved as e:  # (a full disk) the received records stay; they are skipped again next time
                log.warning("%s: not compacted: %s", path, e)
        return channel, msgs

    def _fd(self, channel: str) -> int:
        fd = self._fds.get(channel)
        if fd is None:
            fd = self._fds[channel] = os.open(self._path(channel), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return fd

    def add(self, m: ChannelMessage) -> None:
        """Buffer a message for the next ``sync``."""
        self._pending.setdefault(m.channel, []).append(message_record(m))

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def sync(self) -> None:
        """Write and fdatasync what ``add`` buffered (OSError: nothing of that channel is known to be kept)."""
        pending, self._pending = self._pending, {}
        for channel, records in pending.items():
            fd = self._fd(channel)
            _append(fd, b"".join(records))
            os.fdatasync(fd)
            self.syncs += 1

    def taken(self, channel: str, count: int, left: int, left_bytes: int) -> None:
        """The client received the oldest ``count`` messages of ``channel``; ``left`` (``left_bytes`` of data) remain."""
        if channel in self._pending:  # (never: sync runs before any reply; kept in order regardless)
            self.sync()
        fd = self._fd(channel)
        if left == 0:
            os.ftruncate(fd, 0)
        else:
            _append(fd, _record(bytes((_TAKE,)) + count.to_bytes(4, "little")))
            size = os.fstat(fd).st_size
            dead = size - left_bytes - left * (_HEAD.size + _MSG_HEAD)  # what a rewrite would drop
            if dead >= COMPACT_AT and dead > size // 2:
                self._compact(channel)
                return
        os.fdatasync(fd)

    def _compact(self, channel: str) -> None:
        path = self._path(channel)
        msgs, _, _ = parse(path.read_bytes(), channel)
        self.close_channel(channel)
        atomic_write(path, b"".join(message_record(m) for m in msgs))

    def close_channel(self, channel: str) -> None:
        fd = self._fds.pop(channel, None)
        if fd is not None:
            os.close(fd)


def _append(fd: int, data: bytes) -> None:
    """Append all of ``data``, or nothing: a write that fails part way (disk full) is cut off again, so the file
    never holds a torn record that would hide what is appended after it."""
    start = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        try:
            os.ftruncate(fd, start)
        except OSError as e:
            log.error("spool: could not cut a failed write off again (%s): the file ends in a torn record", e)
        raise
