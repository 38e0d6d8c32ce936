"""One source for each shared rule (issue 9, item 5); each copy that must stay is pinned here.

* daemon error codes: clients/omerta_clients/errors.py keeps a copy of meshd/errors.py's table (clients
  import nothing of omerta_mesh);
* the node id prefix length: core.ids.MIN_PREFIX; the daemon resolves every peer, the client's copy only
  words its help; API docs and fixes are derived from it;
* the NAT kinds: core/nat/kinds.py; the simulator's presets, the netns lab's router kinds, the design
  table, the netns matrix's expected verdicts and NatVerdict.label are pinned to it;
* the JSON-RPC client: tests/meshd uses the real one (rpcclient.py only adds raw frames).
"""

from __future__ import annotations

import ast
from pathlib import Path

from omerta_clients import errors as client_errors
from omerta_clients.ctl import common as ctl_common
from omerta_mesh.core.ids import MIN_PREFIX
from omerta_mesh.core.nat.classify import NatVerdict
from omerta_mesh.core.nat.kinds import ALL_KINDS, NAT_KINDS
from omerta_mesh.meshd import schema
from omerta_mesh.meshd.errors import DEFAULT_FIX, Code

ROOT = Path(__file__).resolve().parents[1]


def test_client_error_table_is_the_daemons() -> None:
    for name, (number, exit_code, _) in client_errors.DAEMON_ERRORS.items():
        assert name in Code.__members__, f"clients know an error {name} the daemon does not have"
        assert Code[name] == number, f"{name}: the client says {number}, the daemon {int(Code[name])}"
        assert exit_code in (client_errors.USAGE, client_errors.DAEMON_DOWN, client_errors.PERMISSION,
                             client_errors.NOT_FOUND, client_errors.TIMEOUT)
    assert client_errors.NAME_BY_CODE == {int(Code[n]): n for n in client_errors.DAEMON_ERRORS}
    # the daemon errors a script must be able to tell apart each have their own exit code in the client
    for name in ("INVALID_PARAMS", "PERMISSION_DENIED", "PEER_NOT_FOUND", "PEER_AMBIGUOUS", "NETWORK_NOT_FOUND",
                 "NOT_CONNECTED", "TIMEOUT", "SHUTTING_DOWN"):
        assert name in client_errors.DAEMON_ERRORS, name


def test_id_prefix_rule_has_one_source() -> None:
    assert ctl_common.MIN_PREFIX == MIN_PREFIX  # the client's copy (help texts only)
    assert f"{MIN_PREFIX}+" in ctl_common.PEER_HELP and f"{MIN_PREFIX}+" in schema.PEER_DOC
    assert f"{MIN_PREFIX}+" in DEFAULT_FIX[Code.PEER_NOT_FOUND]
    assert f"unique prefix of {MIN_PREFIX}+ characters" in (ROOT / "README.md").read_text()
    # the client resolves no peer itself: no second matching rule in clients/
    for path in (ROOT / "clients").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert not names & {"match_peer", "peer_id", "resolve_peer"}, path


def test_nat_kinds_have_one_table() -> None:
    from nat_design import KINDS as DESIGN
    from omerta_mesh.sim.nat import PRESETS

    assert list(DESIGN) == list(ALL_KINDS)
    alloc = {"preserving": "PRESERVE", "sequential": "SEQUENTIAL", "random": "RANDOM"}
    assert set(PRESETS) == set(NAT_KINDS)
    for kind, (mapping, filtering, allocation) in NAT_KINDS.items():
        m, f, p = PRESETS[kind]
        assert (m.name, f.name, p.name) == (mapping.name, filtering.name, alloc[allocation]), kind
        delta = 1 if allocation == "sequential" else 0
        assert NatVerdict(mapping, filtering, allocation, delta, (), 1.0).label == kind


def test_nat_kinds_in_the_netns_lab_and_matrix() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "netns"))
    try:
        from labnat import KINDS as LAB
    finally:
        sys.path.remove(str(ROOT / "tests" / "netns"))
    alloc = {"preserving": "preserve", "sequential": "sequential", "random": "random"}
    assert {k: (m.name, f.name, alloc[a]) for k, (m, f, a) in NAT_KINDS.items()} == LAB
    matrix = ast.parse((ROOT / "tests/netns/test_mesh_matrix.py").read_text())
    fn = next(n for n in matrix.body if isinstance(n, ast.FunctionDef) and n.name == "expected_nat")
    table = next(n for n in ast.walk(fn) if isinstance(n, ast.Dict))
    expected = {ast.literal_eval(k): ast.literal_eval(v) for k, v in zip(table.keys, table.values) if k is not None}
    default = ("apdm", "apdf")  # what expected_nat answers for a kind it does not list
    for kind in ALL_KINDS:
        want = ("none", "none") if kind == "public" else (NAT_KINDS[kind][0].name.lower(), NAT_KINDS[kind][1].name.lower())
        assert expected.get(kind, default) == want, kind


def test_daemon_tests_use_the_real_client() -> None:
    text = (ROOT / "tests/meshd/rpcclient.py").read_text()
    assert "from omerta_clients.rpc import Client" in text and "class RpcClient(Client)" in text
    assert "int.from_bytes" not in text  # no second frame reader
