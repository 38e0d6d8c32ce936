"""Run in a private mount namespace: a fake journald socket receives what the daemon's logging sends."""

import json
import logging
import os
import socket
import subprocess
import sys

subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
os.makedirs("/run/systemd/journal")
rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
rx.bind("/run/systemd/journal/socket")
rx.settimeout(5)

from omerta_mesh.meshd.systemd import setup_logging  # noqa: E402

st = os.fstat(sys.stderr.fileno())
kind = setup_logging("info", {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
logging.getLogger("omerta_mesh.test").warning("peer %s is relayed", "bob", extra={"PEER": "bob", "PATH": "relay"})
data = rx.recv(65536)

# a core event through the daemon's event log (meshd/eventlog.py): its fields reach the journal
from omerta_mesh.core import events as ev  # noqa: E402
from omerta_mesh.core.ids import NetworkId, NodeId  # noqa: E402
from omerta_mesh.core.peers.paths import ViaRelay  # noqa: E402
from omerta_mesh.meshd.eventlog import EventLog  # noqa: E402


class Names:
    def peer(self, node: NodeId) -> str:
        return "carol" if node.raw[0] == 2 else "bob"

    def network(self, network: NetworkId) -> str:
        return "home"


bob, carol = NodeId(bytes([1] * 32)), NodeId(bytes([2] * 32))
change = ev.PathChanged(NetworkId(bytes(10)), bob, ("192.0.2.7", 4000), ViaRelay(str(carol)), "relay", "direct path lost")
EventLog(Names(), dict).on_event(change)
event = rx.recv(65536)
print(json.dumps({"kind": kind, "datagram": data.decode("utf-8", "replace"), "event": event.decode("utf-8", "replace")}))
