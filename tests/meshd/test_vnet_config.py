"""[vnet] configuration: defaults, per-network device names and static addresses, refusals that name the fix,
and --no-vnet."""

from __future__ import annotations

import pytest

from omerta_mesh.meshd import config as c
from omerta_mesh.meshd.main import apply_flags, parse_args


def test_defaults_and_lookups() -> None:
    d = c.default()
    assert (d.vnet.enabled, d.vnet.mtu, d.vnet.devices, d.vnet.static) == ("auto", 1340, [], [])
    cfg = c.build({"vnet": {"enabled": True, "devices": ["home = omhome"], "static": ["home=100.64.7.9", "home=fd00::9"]}}, "t")
    assert cfg.vnet.device_for("home") == "omhome" and cfg.vnet.device_for("work") is None
    assert cfg.vnet.static_for("home") == ("100.64.7.9", "fd00::9") and cfg.vnet.static_for("work") == (None, None)
    assert c.diff(d, cfg)[1] == ["vnet.devices", "vnet.enabled", "vnet.static"]  # restart needed


@pytest.mark.parametrize("vnet, words", [
    ({"enabled": "yes"}, "vnet.enabled"),
    ({"mtu": 9000}, "1351"),
    ({"devices": ["home=a-name-far-too-long"]}, "NETWORK=DEVICE"),
    ({"devices": ["nodevice"]}, "NETWORK=DEVICE"),
    ({"static": ["home=300.1.1.1"]}, "NETWORK=ADDRESS"),
    ({"tun": 1}, "unknown key"),
])
def test_bad_values_are_refused_with_the_key(vnet: dict, words: str) -> None:
    with pytest.raises(c.ConfigError) as e:
        c.build({"vnet": vnet}, "meshd.toml")
    assert words in str(e.value) and "meshd.toml" in str(e.value)


def test_no_vnet_flag() -> None:
    assert apply_flags(c.default(), parse_args(["--no-vnet"])).vnet.enabled is False
    assert apply_flags(c.default(), parse_args([])).vnet.enabled == "auto"
