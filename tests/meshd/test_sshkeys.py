"""meshd/sshkeys.py: reading this host's sshd public keys ([ssh] host_keys) and writing known_hosts lines."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from omerta_mesh.meshd.config import build
from omerta_mesh.meshd.sshkeys import key_type, known_hosts_lines, parse_public_key, read_host_keys
from sshd import keygen

ED = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))


def test_a_pub_line_is_parsed_and_checked() -> None:
    b64 = base64.b64encode(ED).decode()
    assert parse_public_key(f"ssh-ed25519 {b64} root@host\n") == ED
    assert key_type(ED) == "ssh-ed25519"
    assert parse_public_key(f"ssh-rsa {b64}") is None  # the type must be the blob's
    assert parse_public_key("ssh-ed25519 not-base64!") is None and parse_public_key("") is None
    assert key_type(b"\x00\x00\x00\x50abc") is None and key_type(b"\x00") is None


def test_host_keys_are_read_by_glob_and_bad_files_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keygen(tmp_path, "ssh_host_a_key", "ssh_host_b_key")
    (tmp_path / "ssh_host_bad_key.pub").write_text("garbage\n")
    keys = read_host_keys([str(tmp_path / "ssh_host_*_key.pub"), str(tmp_path / "missing.pub"), str(tmp_path / "ssh_host_a_key.pub")])
    want = [parse_public_key((tmp_path / f"ssh_host_{n}_key.pub").read_text()) for n in ("a", "b")]
    assert list(keys) == want  # each once, in path order
    assert "missing.pub not read" in caplog.text and "ssh_host_bad_key.pub is not an OpenSSH public key" in caplog.text


def test_known_hosts_lines() -> None:
    nid = "n" * 52
    assert known_hosts_lines(nid, (ED, b"junk")) == [f"{nid} ssh-ed25519 {base64.b64encode(ED).decode()}"]


def test_config_section() -> None:
    assert build({}, "t").ssh.host_keys == ["/etc/ssh/ssh_host_*_key.pub"]
    assert build({"ssh": {"host_keys": []}}, "t").ssh.host_keys == []
    with pytest.raises(Exception, match="ssh.host_keys"):
        build({"ssh": {"host_keys": "/etc/x"}}, "t")
