"""A private dbus-daemon for tests, with system-bus policy semantics and our policy file included."""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "packaging/dbus/org.omerta.Mesh1.conf"

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"""


class PrivateBus:
    """``dbus-daemon --config-file=<ours> --print-address``; the policy's group replaced by ``group``."""

    def __init__(self, base: Path, group: str = "omerta") -> None:
        self.dir = base / "bus"
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        policy = self.dir / "policy.conf"
        text = POLICY.read_text().replace('group="omerta"', f'group="{group}"')
        if os.geteuid() != 0:  # an ordinary user's daemon owns the name on its own private bus, as root would
            text = text.replace('<policy user="root">', f'<policy user="{pwd.getpwuid(os.geteuid()).pw_name}">')
        policy.write_text(text)
        self.socket = self.dir / "bus.sock"
        conf = self.dir / "bus.conf"
        conf.write_text(BUS_CONFIG.format(socket=self.socket, policy=policy))
        self.proc = subprocess.Popen(
            [shutil.which("dbus-daemon") or "dbus-daemon", f"--config-file={conf}", "--print-address", "--nofork", "--nopidfile"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        _LIVE.add(self)  # closed at exit if a failing test or fixture never reached close()
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            raise RuntimeError(f"dbus-daemon did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
        os.chmod(self.socket, 0o777)

    def close(self) -> None:
        _LIVE.discard(self)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


_LIVE: set[PrivateBus] = set()
atexit.register(lambda: [bus.close() for bus in list(_LIVE)])


def have_dbus_daemon() -> bool:
    return shutil.which("dbus-daemon") is not None
