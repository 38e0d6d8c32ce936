"""Open a TUN device and move IP packets through it, optionally with virtio-net headers and offloads.

Facts (BRIEF.md 4b, verified on this machine; docs/vnet.md):

* ``/dev/net/tun`` + ``TUNSETIFF`` with ``IFF_TUN | IFF_NO_PI`` makes (or attaches to) device NAME in the
  opener's network namespace. We never set ``TUNSETPERSIST``: the kernel deletes the device, with its
  addresses and routes, when the last fd closes, so even ``kill -9`` leaves nothing behind.
* With ``IFF_VNET_HDR`` every read and write starts with a 10-byte ``virtio_net_hdr`` ("<BBHHHH": flags,
  gso_type, hdr_len, gso_size, csum_start, csum_offset), pings too. ``TUNSETOFFLOAD`` with TUN_F_CSUM |
  TSO4 | TSO6 (and USO4 | USO6 where the kernel knows them, EINVAL otherwise) lets the kernel hand over
  64 KiB TCP super-segments (gso_type 1 or 4, gso_size = MSS, NEEDS_CSUM with only the pseudo-header seed
  in the TCP checksum). Carry header and packet byte for byte: the receiving kernel segments or delivers.
* The fd is non-blocking: ``read`` returns None when nothing is queued (for ``loop.add_reader``).

Errors are ``TunError`` (an ``OSError``) whose message names the cause and the fix.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNGETFEATURES = 0x800454CF
TUNGETVNETHDRSZ = 0x800454D7
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_MULTI_QUEUE = 0x0100
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
TUN_F_USO4 = 0x20
TUN_F_USO6 = 0x40
OFFLOADS_TSO = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
OFFLOADS_USO = OFFLOADS_TSO | TUN_F_USO4 | TUN_F_USO6
IFNAMSIZ = 16

VNET_HDR = struct.Struct("<BBHHHH")
VNET_HDR_LEN = VNET_HDR.size  # 10
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_TCPV6 = 4
PLAIN_VNET_HDR = bytes(VNET_HDR_LEN)  # for an ordinary, fully checksummed packet we built (e.g. an ICMP reply)
MAX_FRAME = VNET_HDR_LEN + 65535


class TunError(OSError):
    """The TUN device could not be opened or configured; the message says why and how to fix it."""


@dataclass(frozen=True, slots=True)
class VnetHeader:
    flags: int
    gso_type: int
    hdr_len: int
    gso_size: int
    csum_start: int
    csum_offset: int

    @classmethod
    def parse(cls, frame: bytes | bytearray | memoryview) -> "VnetHeader":
        return cls(*VNET_HDR.unpack_from(frame))

    def pack(self) -> bytes:
        return VNET_HDR.pack(self.flags, self.gso_type, self.hdr_len, self.gso_size, self.csum_start, self.csum_offset)


def valid_ifname(name: str) -> bool:
    """The kernel's rule (dev_valid_name): 1-15 bytes, not '.'/'..', no '/', ':' or whitespace."""
    raw = name.encode("utf-8", "replace")
    return 0 < len(raw) < IFNAMSIZ and name not in (".", "..") and not any(c in name for c in "/:") and not any(
        c.isspace() for c in name
    )


def _open_error(e: OSError, path: str) -> TunError:
    if e.errno == errno.ENOENT:
        return TunError(e.errno, f"no TUN device: {path} missing; load the tun module (`modprobe tun`), or in a "
                        "container pass the device through (`--device /dev/net/tun`)")
    if e.errno in (errno.EACCES, errno.EPERM):
        return TunError(e.errno, f"opening {path} was refused ({os.strerror(e.errno)}); run the daemon as root "
                        "or give it access to the device and CAP_NET_ADMIN")
    if e.errno == errno.ENODEV:
        return TunError(e.errno, f"{path} exists but the kernel has no TUN driver; load the tun module (`modprobe tun`)")
    return TunError(e.errno, f"opening {path} failed: {e.strerror}")


def _setiff_error(e: OSError, name: str) -> TunError:
    if e.errno == errno.EPERM:
        return TunError(e.errno, "creating a TUN device needs CAP_NET_ADMIN; run as root or give the daemon "
                        "CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_NET_ADMIN)")
    if e.errno == errno.EBUSY:
        return TunError(e.errno, f"TUN device {name} is in use by another process (another daemon running?); stop it "
                        "or configure another device name")
    if e.errno == errno.EINVAL:
        return TunError(e.errno, f"the kernel refused TUN device {name!r} (a name of another kind of device, or "
                        "flags it does not support); choose another device name")
    return TunError(e.errno, f"creating TUN device {name} failed: {e.strerror}")


def _set_offload(fd: int, flags: int) -> bool:
    try:
        fcntl.ioctl(fd, TUNSETOFFLOAD, flags)
        return True
    except OSError as e:
        if e.errno == errno.EINVAL:
            return False
        raise


class Tun:
    """One open TUN queue. ``read``/``write`` move whole frames (with the vnet header when ``vnet_hdr``)."""

    def __init__(self, fd: int, name: str, vnet_hdr: bool, offloads: int) -> None:
        self.fd = fd
        self.name = name
        self.vnet_hdr = vnet_hdr
        self.offloads = offloads  # what TUNSETOFFLOAD accepted (0 without vnet headers)

    @property
    def uso(self) -> bool:
        return bool(self.offloads & TUN_F_USO4)

    def fileno(self) -> int:
        return self.fd

    def read(self, size: int = MAX_FRAME) -> bytes | None:
        """One frame, or None when nothing is queued."""
        try:
            return os.read(self.fd, size)
        except BlockingIOError:
            return None

    def read_into(self, buf: bytearray | memoryview) -> int:
        """Read one frame into ``buf``; its length, or 0 when nothing is queued. Use only ``buf[:n]``."""
        try:
            return os.readv(self.fd, [buf])
        except BlockingIOError:
            return 0

    def write(self, frame: bytes | bytearray | memoryview) -> int:
        """Write one frame (a vnet header first when ``vnet_hdr``). Raises ``BlockingIOError`` when full."""
        return os.write(self.fd, frame)

    def write_packet(self, packet: bytes | bytearray | memoryview) -> int:
        """Write a plain, fully checksummed IP packet, prefixed with an empty vnet header when needed."""
        if self.vnet_hdr:
            return os.writev(self.fd, [PLAIN_VNET_HDR, packet])
        return os.write(self.fd, packet)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Tun":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_tun(
    name: str,
    *,
    vnet_hdr: bool = False,
    offload: bool = True,
    multi_queue: bool = False,
    blocking: bool = False,
    path: str = TUN_PATH,
) -> Tun:
    """Create (or attach to) TUN device ``name`` in this process's network namespace.

    With ``vnet_hdr`` and ``offload``, ask for CSUM|TSO4|TSO6|USO4|USO6, falling back to CSUM|TSO4|TSO6
    and then CSUM alone when the kernel says EINVAL; ``Tun.offloads`` says what was accepted.
    """
    if not valid_ifname(name):
        raise TunError(errno.EINVAL, f"bad device name {name!r}: 1-15 bytes without '/', ':' or spaces; choose another")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (0 if blocking else os.O_NONBLOCK))
    except OSError as e:
        raise _open_error(e, path) from e
    try:
        flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0) | (IFF_MULTI_QUEUE if multi_queue else 0)
        try:
            ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
        except OSError as e:
            raise _setiff_error(e, name) from e
        real = ifr[:IFNAMSIZ].rstrip(b"\0").decode()
        offloads = 0
        if vnet_hdr and offload:
            for want in (OFFLOADS_USO, OFFLOADS_TSO, TUN_F_CSUM):
                if _set_offload(fd, want):
                    offloads = want
                    break
        return Tun(fd, real, vnet_hdr, offloads)
    except BaseException:
        os.close(fd)
        raise


def features(path: str = TUN_PATH) -> int:
    """TUNGETFEATURES: the IFF_* flags this kernel's TUN driver supports."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise _open_error(e, path) from e
    try:
        return struct.unpack("I", fcntl.ioctl(fd, TUNGETFEATURES, b"\0" * 4))[0]
    finally:
        os.close(fd)


def tun_unavailable(path: str = TUN_PATH) -> str | None:
    """Why TUN cannot be used here (None when it probably can): missing device or missing CAP_NET_ADMIN."""
    if not os.path.exists(path):
        return _open_error(OSError(errno.ENOENT, "missing"), path).strerror
    if not _has_net_admin():
        return _setiff_error(OSError(errno.EPERM, "no capability"), "").strerror
    return None


def _has_net_admin() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 12))  # CAP_NET_ADMIN
    except OSError:
        pass
    return os.geteuid() == 0
