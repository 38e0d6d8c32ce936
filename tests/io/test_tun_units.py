"""TUN pieces that need no privileges: device names, markers, vnet headers, error texts (io/tun.py, io/tundev.py)."""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omerta_mesh.io import tun, tundev


def test_device_name_rule() -> None:
    assert tundev.device_name("home") == "om-home"
    assert tundev.device_name("lab_2-x") == "om-lab_2-x"
    assert tundev.device_name("twelve-chars") == "om-twelve-chars"  # exactly 15
    long = tundev.device_name("thirteen-char")
    assert len(long) == 15 and long.startswith("om-thirtee-")
    assert tundev.device_name("Home") != tundev.device_name("home")  # changed names get a hash tag
    assert tundev.device_name("Home").startswith("om-home-")
    assert tundev.device_name("famille müller") != tundev.device_name("famille muller")
    assert tundev.device_name("a-very-long-network-1") != tundev.device_name("a-very-long-network-2")
    assert tundev.device_name("").startswith("om-") and tundev.device_name("///").startswith("om-")
    assert tundev.device_name("x", prefix="mesh-") == "mesh-x"
    with pytest.raises(ValueError, match="too long"):
        tundev.device_name("x", prefix="a-long-prefix-")


@given(st.text(max_size=40))
def test_device_names_are_always_valid(name: str) -> None:
    dev = tundev.device_name(name)
    assert tun.valid_ifname(dev) and len(dev.encode()) <= 15 and dev.startswith("om-")
    assert dev == tundev.device_name(name)


def test_valid_ifname() -> None:
    assert tun.valid_ifname("om-x") and not tun.valid_ifname("") and not tun.valid_ifname("a" * 16)
    assert not tun.valid_ifname("a/b") and not tun.valid_ifname("a b") and not tun.valid_ifname("a:1")
    assert not tun.valid_ifname("..")


def test_marker_names_a_live_process_and_detects_dead_or_reused_pids() -> None:
    mine = tundev.marker()
    assert mine.startswith(f"omerta-mesh pid={os.getpid()} start=") and tundev.marker_alive(mine) is True
    p = subprocess.Popen(["true"])
    p.wait()
    assert tundev.marker_alive(f"omerta-mesh pid={p.pid} start=1") is False
    assert tundev.marker_alive(mine.rsplit("=", 1)[0] + "=1") is False  # same pid, another start: reused
    assert tundev.marker_alive("my vpn") is None and tundev.marker_alive("") is None


def test_vnet_header_round_trip() -> None:
    h = tun.VnetHeader(1, tun.VIRTIO_NET_HDR_GSO_TCPV4, 52, 1388, 34, 16)
    raw = h.pack()
    assert len(raw) == tun.VNET_HDR_LEN == 10 and tun.VnetHeader.parse(raw + b"payload") == h
    assert tun.PLAIN_VNET_HDR == bytes(10)


def test_missing_device_says_load_the_module(tmp_path) -> None:
    with pytest.raises(tun.TunError) as e:
        tun.open_tun("om-x", path=str(tmp_path / "tun"))
    assert "no TUN device" in e.value.strerror and "modprobe tun" in e.value.strerror
    assert "modprobe tun" in (tun.tun_unavailable(str(tmp_path / "tun")) or "")


def test_bad_name_is_refused_before_any_syscall(tmp_path) -> None:
    with pytest.raises(tun.TunError, match="bad device name"):
        tun.open_tun("a name with spaces", path=str(tmp_path / "nope"))


def test_offload_constants_match_the_kernel_abi() -> None:
    assert (tun.TUNSETIFF, tun.TUNSETOFFLOAD, tun.TUNGETFEATURES) == (0x400454CA, 0x400454D0, 0x800454CF)
    assert tun.OFFLOADS_USO == 0x67 and tun.OFFLOADS_TSO == 0x07


@pytest.mark.parametrize(
    "kernel_takes, expect",
    [({0x67, 0x07, 0x01}, 0x67), ({0x07, 0x01}, 0x07), ({0x01}, 0x01), (set(), 0)],
    ids=["uso", "tso-only", "csum-only", "none"],
)
def test_offloads_fall_back_on_einval(monkeypatch, kernel_takes: set[int], expect: int) -> None:
    """An older kernel refuses USO (EINVAL): the device still opens with what it does take."""
    import errno
    import struct

    asked = []

    def fake_ioctl(fd: int, req: int, arg):  # type: ignore[no-untyped-def]
        if req == tun.TUNSETIFF:
            return struct.pack("16sH22x", b"om-fake", 0)
        if req == tun.TUNSETOFFLOAD:
            asked.append(arg)
            if arg not in kernel_takes:
                raise OSError(errno.EINVAL, "Invalid argument")
            return 0
        raise AssertionError(hex(req))

    monkeypatch.setattr(tun.fcntl, "ioctl", fake_ioctl)
    with tun.open_tun("om-fake", vnet_hdr=True, path="/dev/null") as t:
        assert t.offloads == expect and t.uso == bool(expect & tun.TUN_F_USO4) and t.name == "om-fake"
    assert asked[0] == tun.OFFLOADS_USO and asked[-1] == (expect or tun.TUN_F_CSUM)


def test_setiff_refusals_name_cause_and_fix(monkeypatch) -> None:
    import errno

    for code, words in [(errno.EPERM, "needs CAP_NET_ADMIN"), (errno.EBUSY, "in use by another process")]:
        def fake_ioctl(fd: int, req: int, arg, code=code):  # type: ignore[no-untyped-def]
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(tun.fcntl, "ioctl", fake_ioctl)
        with pytest.raises(tun.TunError, match=words):
            tun.open_tun("om-fake", path="/dev/null")
