"""Who may use the SOCKS gateway without a login (meshd/socks.py ``judge``, meshd/auth.py ``user_may_write``), on
real loopback connections and the real user database; and the rate limit of the log lines about refused users.
The gateway end to end (curl as nobody) is in tests/clients/test_socks.py."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess

import pytest

from meshd.asuser import TempGroup
from omerta_mesh.meshd.auth import user_may_write
from omerta_mesh.meshd.socks import QuietLog, Refusal, judge
from omerta_mesh.meshd.socks_wire import Fault


def no_such_uid() -> int:
    uid = 3_999_999
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def test_quiet_log_lets_one_line_a_minute_through_per_key_and_counts_the_rest() -> None:
    q = QuietLog(60.0, keys=2)
    assert [q.allow(65534, t) for t in (0.0, 1.0, 30.0, 59.9, 60.0, 61.0, 121.0)] == [0, None, None, None, 3, None, 1]
    assert q.allow(1000, 121.5) == 0  # another uid is not held back by the first
    assert q.allow("unknown", 122.0) == 0  # a third key: the oldest (65534) is forgotten, the table stays at two
    assert q.allow(65534, 122.5) == 0  # (and now 1000 is)
    assert q.allow("unknown", 123.0) is None


def test_the_rule_by_uid_root_the_daemons_user_and_no_groups_for_a_uid_without_a_user() -> None:
    assert user_may_write(0, None) and user_may_write(os.geteuid(), None)
    ghost = no_such_uid()
    assert not user_may_write(ghost, None) and not user_may_write(ghost, os.getegid())
    nobody = pwd.getpwnam("nobody")
    if os.geteuid() != nobody.pw_uid:
        assert not user_may_write(nobody.pw_uid, None)
        assert user_may_write(nobody.pw_uid, nobody.pw_gid)  # its primary group is in the user database's list


@pytest.mark.root("a temporary group with nobody listed in it")
def test_a_user_listed_in_the_write_group_may_write() -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    g = TempGroup()
    try:
        assert not user_may_write(nobody, g.gid)
        subprocess.run(["gpasswd", "-a", "nobody", g.name], check=True, capture_output=True)
        assert user_may_write(nobody, g.gid)
    finally:
        g.close()


def test_judge_lets_this_processs_user_in_and_refuses_a_client_that_is_gone() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        client = socket.create_connection(srv.getsockname())
        conn, peer = srv.accept()
        with conn:
            assert judge(peer, conn.getsockname(), None) == os.geteuid()  # (root, or the user running the tests)
            client.close()
            r = judge(peer, conn.getsockname(), None)
            assert isinstance(r, Refusal) and r.fault is Fault.OWNER_UNKNOWN and "already closed" in r.detail, r
