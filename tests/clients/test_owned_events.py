"""The membership of an owned network as the daemon reports it (issue 16, docs/membership.md): three real daemons on
loopback (no TUN), each named only in its own meshd.toml, so the others know its name from its signed record alone.
dora owns "lab"; emil and fred join by invite; dora removes fred. Their `omertactl events --json` streams carry
`invite.redeemed`, `member.enrolled`, `member.enrolment_refused` and `member.removed` (with the removed member's and
the remover's names), their logs say each in words, and the monitor on emil marks dora as the owner and shows the
removal in its event log."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from rich.console import Console

from clients.ctlharness import Lines, check_event, check_result, ctl, ctl_popen, peer_json, start_all, wait_until
from meshd.harness import DaemonProc
from meshd.test_eventlog import wait_line
from omerta_clients.tui.app import Monitor

Event = dict


@pytest.fixture
def named(tmp_path: Path) -> Iterator[tuple[DaemonProc, DaemonProc, DaemonProc]]:
    """dora, emil and fred, fresh, each with its own name and no [names]; their logs must hold no traceback."""
    ds = []
    for name in ("dora", "emil", "fred"):
        d = DaemonProc(tmp_path, name)
        conf = d.dir / "meshd.toml"
        conf.write_text(f'[node]\nname = "{name}"\n')
        d.extra = ["--config", str(conf)]
        ds.append(d)
    try:
        start_all(ds)
        yield ds[0], ds[1], ds[2]
        for d in ds:
            assert "Traceback" not in d.log_text(), d.log_text()
    finally:
        for d in ds:
            d.close()


def node_id(d: DaemonProc) -> str:
    return str(ctl(d.socket, "status", "--json").json()["node_id"])


def invite(d: DaemonProc, *options: str) -> str:
    r = ctl(d.socket, "network", "invite", "lab", *options)
    assert r.rc == 0, r.err
    return r.out.strip()


def join(d: DaemonProc, invite_text: str) -> None:
    j = ctl(d.socket, "network", "join", invite_text)
    assert j.rc == 0, (j.out, j.err)


class Stream:
    """`omertactl events --json` of one daemon: the subscription first, then each event (checked against the
    types the daemon declares)."""

    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.sub = check_result("events.subscribe", json.loads(lines.next()))
        self.events: list[Event] = []

    def wait(self, pred: Callable[[Event], bool], what: str, timeout: float = 20.0) -> Event:
        for e in self.events:
            if pred(e):
                return e
        while True:
            line = self.lines.next(timeout)
            assert line, f"the stream ended without {what}: {[e['type'] for e in self.events]}"
            e = check_event(json.loads(line))
            assert e["seq"] > self.sub["seq"]
            self.events.append(e)
            if pred(e):
                return e


def test_enrolment_refusal_and_removal_reach_the_event_streams_and_the_logs(named) -> None:
    dora, emil, fred = named
    dora_id, emil_id, fred_id = node_id(dora), node_id(emil), node_id(fred)
    assert ctl(dora.socket, "network", "create", "lab", "--owned").rc == 0
    once = invite(dora, "--uses", "1")
    with ctl_popen(dora.socket, "events", "--json", "--for", "120") as dp, \
            ctl_popen(emil.socket, "events", "--json", "--for", "120") as ep, \
            ctl_popen(fred.socket, "events", "--json", "--for", "120") as fp:
        ds, es, fs = Stream(Lines(dp.stdout)), Stream(Lines(ep.stdout)), Stream(Lines(fp.stdout))

        # emil enrols: dora (the admin) says an invite was redeemed, emil that dora enrolled it
        join(emil, once)
        red = ds.wait(lambda e: e["type"] == "invite.redeemed", "invite.redeemed at dora")
        assert red["node_id"] == emil_id and red["uses"] == 1 and red["network"] == es.wait(
            lambda e: e["type"] == "member.enrolled", "member.enrolled at emil")["network"]
        assert es.wait(lambda e: e["type"] == "member.enrolled", "")["node_id"] == dora_id
        wait_line(dora, rf"INFO .*: enrolled [^:]*{emil_id[:12]}\)? in lab with an invite \(1 use of it so far\)")
        wait_line(emil, rf"INFO .*: this node enrolled in network lab by [^:]*{dora_id[:12]}\)?: it holds a member certificate")

        # the one use is spent: fred's enrolment is refused, in its stream and in its log (a warning)
        r = ctl(fred.socket, "network", "join", once)
        assert r.rc != 0 and "used" in r.err, (r.out, r.err)
        no = fs.wait(lambda e: e["type"] == "member.enrolment_refused", "member.enrolment_refused at fred")
        assert no["node_id"] == dora_id and no["reason"] == "used" and "ask an admin" in no["fix"]
        wait_line(fred, rf"WARNING .*: enrolment in network \S+ refused by [^:]*{dora_id[:12]}\)?: used \(fix: [^)]*ask an admin")

        # fred joins with an invite of its own; dora removes it once emil knows it by name
        join(fred, invite(dora))
        wait_until(lambda: (peer_json(emil.socket, fred_id) or {}).get("name") == "fred", 30, "emil to know fred by name")
        time.sleep(1.5)  # emil's name directory (rebuilt when a second old) forgets fred with its record: it must remember
        assert ctl(dora.socket, "network", "remove", "lab", fred_id[:12]).rc == 0
        for s, who in ((ds, "dora"), (es, "emil")):
            gone = s.wait(lambda e: e["type"] == "member.removed", f"member.removed at {who}")
            assert (gone["node_id"], gone["name"], gone["by"], gone["by_name"]) == (fred_id, "fred", dora_id, "dora"), (who, gone)
        told = [(e["type"], e["node_id"]) for e in es.events if e["type"] in ("peer.left", "member.removed")]
        assert ("peer.left", fred_id) in told[:told.index(("member.removed", fred_id))], told  # no longer listed first
        for d in (dora, emil):
            wait_line(d, rf"INFO .*member fred \({fred_id[:12]}\) in lab removed by dora \({dora_id[:12]}\)")


async def test_monitor_marks_the_owner_and_shows_a_removal_in_its_event_log(named) -> None:
    dora, emil, fred = named
    fred_id = await asyncio.to_thread(node_id, fred)
    await asyncio.to_thread(lambda: ctl(dora.socket, "network", "create", "lab", "--owned"))
    for d in (emil, fred):
        await asyncio.to_thread(lambda d=d: join(d, invite(dora, "--tags", "ops")))
    console = Console(record=True, width=160, height=50, file=io.StringIO())

    def owner_and_fred(m) -> bool:
        return any(r.label == "dora" and r.role == "owner" for r in m.peers.values()) and any(
            r.label == "fred" and r.cert_expires for r in m.peers.values())

    def removed(m) -> bool:
        return any(e.get("type") == "member.removed" for e in m.log)

    mon = Monitor(str(emil.socket), console, ping_interval=0.5, refresh=0.05, poll=0.2, max_seconds=40)
    task = asyncio.create_task(mon.run())
    for _ in range(300):  # the owner's certificate and fred's come with their signed records
        if owner_and_fred(mon.model) or task.done():
            break
        await asyncio.sleep(0.1)
    assert owner_and_fred(mon.model), [(r.label, r.role) for r in mon.model.peers.values()]
    mon.stop_when = removed
    r = await asyncio.to_thread(ctl, dora.socket, "network", "remove", "lab", fred_id[:12])
    assert r.rc == 0, r.err
    mon.changed()  # (the removal may already be in)
    assert await task == 0
    text = console.export_text()
    table = text.split("events\n")[0]
    row = next((x for x in table.splitlines() if re.search(r"\bdora\b.*\bdirect\b", x)), "")
    assert "★ owner" in row and "ROLE" in text, text
    assert not re.search(r"\bfred\b", table), table  # removed: no longer listed
    assert re.search(r"role\s+★ owner", text) and re.search(r"certificate\s+expires \d{4}-\d\d-\d\d \d\d:\d\dZ", text), text
    assert re.search(r"#\d+ member\.removed fred removed by dora$", text, re.M), text
