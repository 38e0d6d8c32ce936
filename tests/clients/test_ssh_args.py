"""omerta-ssh's argument handling: the destination is found among ssh's options (with and without values,
clustered, after "--"), our options go just before it, and everything else reaches ssh untouched."""

from __future__ import annotations

import pytest

from omerta_clients.ssh.main import build_argv, find_destination, host_of, ssh_options

ID = "a" * 52


@pytest.mark.parametrize("args, index, host", [
    (["bob"], 0, "bob"),
    (["me@bob", "uname", "-a"], 0, "bob"),
    (["-p", "2222", "bob", "ls"], 2, "bob"),
    (["-p2222", "-v", "bob"], 2, "bob"),
    (["-i", "/k/id", "-o", "User=x", "-L", "8080:localhost:80", "bob"], 6, "bob"),
    (["-J", "jump@host", "-l", "me", "bob"], 4, "bob"),
    (["-vvt", "-lme", "bob", "-v"], 2, "bob"),
    (["-A", "-vp", "22", "bob"], 3, "bob"),  # -p ends the cluster, its value is the next argument
    (["-oProxyJump=none", "user@x@bob"], 1, "bob"),  # ssh takes the last '@'
    (["-x", "-oClearAllForwardings=yes", "-l", "me", "--", "bob", "scp", "-t", "/tmp"], 5, "bob"),  # scp -S
    (["-e", "none", "bob", "rsync", "--server", "-e", "."], 2, "bob"),  # rsync -e
    (["ssh://me@bob:2222"], 0, "bob"),
    (["ssh://[fd00::1]:22"], 0, "fd00::1"),
])
def test_the_destination_is_found_among_ssh_options(args: list[str], index: int, host: str) -> None:
    d = find_destination(args)
    assert d is not None and d.index == index and d.host == host


@pytest.mark.parametrize("args", [[], ["-V"], ["-Q", "cipher"], ["-p", "22"], ["--"]])
def test_no_destination(args: list[str]) -> None:
    assert find_destination(args) is None
    assert build_argv(args, ID)[1:] == args  # ssh runs unchanged


def test_our_options_go_before_the_destination_and_the_rest_is_untouched() -> None:
    args = ["-o", "ProxyCommand=mine", "-p", "2222", "me@bob", "echo", "-o", "x"]
    out = build_argv(args, ID)
    assert out[0] == "ssh"
    assert out[1:5] == args[:4]  # the user's own options first: for ssh the first value wins, so theirs do
    assert out[5:-4] == ssh_options(ID, fdpass=False) and out[-4:] == args[4:]  # (their ProxyCommand passes no fd)
    opts = dict(o.split("=", 1) for o in ssh_options(ID, fdpass=False)[1::2])
    assert "ProxyUseFdpass" not in opts
    assert opts["HostKeyAlias"] == ID and opts["StrictHostKeyChecking"] == "yes"
    assert opts["ProxyCommand"].endswith(f" connect {ID} %p") and opts["KnownHostsCommand"].endswith(f" ssh-known-hosts {ID}")


def test_the_connection_is_passed_to_ssh_unless_the_user_has_a_proxy_of_their_own() -> None:
    opts = dict(o.split("=", 1) for o in build_argv(["me@bob"], ID)[2:-1:2])
    assert opts["ProxyUseFdpass"] == "yes" and opts["ProxyCommand"].endswith(f" connect --fdpass {ID} %p")
    for own in (["-J", "hop"], ["-oProxyJump=hop"], ["-o", "proxycommand=nc %h %p"]):
        assert "ProxyUseFdpass=yes" not in build_argv([*own, "me@bob"], ID), own


def test_options_go_before_a_double_dash() -> None:
    args = ["-l", "me", "--", "bob", "scp", "-f", "x"]
    out = build_argv(args, ID)
    assert out[1:3] == ["-l", "me"] and out[-5:] == ["--", "bob", "scp", "-f", "x"] and out[3:-5] == ssh_options(ID)


def test_host_of() -> None:
    assert host_of("bob") == "bob" and host_of("u@bob") == "bob" and host_of("ssh://bob") == "bob"
    assert host_of("100.64.1.2") == "100.64.1.2" and host_of("ssh://u@[fd00::2]:22") == "fd00::2"
