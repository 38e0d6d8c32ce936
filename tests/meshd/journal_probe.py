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
print(json.dumps({"kind": kind, "datagram": data.decode("utf-8", "replace")}))
