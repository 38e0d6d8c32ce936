"""Metric names and families from counters (pure), and the [metrics] configuration's checks, without a daemon."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from omerta_mesh.core.errors import DropReason
from omerta_mesh.meshd import config
from omerta_mesh.meshd.metrics import counter_families, counter_metric_name

COUNTERS = {
    "drop.truncated": 3, "drop.replayed": 1, "drop.internal_error": 2, "handshake.completed": 4, "rx.refused.no_inbox": 1,
    "control.bytes.gossip": 313, "gossip.bytes_sent": 900, "udp.sent": 7, "rpc.clients": 2, "socks.handshake_timeout": 1,
    "some.new-counter": 5,
}


class Fixed:
    def collect(self):  # a collector yielding the families of COUNTERS
        return counter_families(COUNTERS)


def exposition() -> dict:
    reg = CollectorRegistry()
    reg.register(Fixed())
    text = generate_latest(reg).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_names_follow_prometheus_conventions() -> None:
    assert counter_metric_name("udp.sent") == "omerta_udp_sent"
    assert counter_metric_name("gossip.bytes_sent") == "omerta_gossip_sent_bytes"  # the unit last
    assert counter_metric_name("relay.bytes") == "omerta_relay_bytes"
    assert counter_metric_name("some.new-counter") == "omerta_some_new_counter"


def test_counters_become_labelled_families_gauges_and_counters() -> None:
    fams = exposition()
    drops = {x.labels["reason"]: x.value for x in fams["omerta_drops"].samples if x.name == "omerta_drops_total"}
    assert drops["truncated"] == 3 and drops["replayed"] == 1 and drops["internal_error"] == 2
    assert {r.value for r in DropReason} <= set(drops) and drops["bad_mac1"] == 0  # every reason, 0 until it happens
    hs = {x.labels["event"]: x.value for x in fams["omerta_handshakes"].samples if x.name.endswith("_total")}
    assert hs["completed"] == 4 and hs["initiations_sent"] == 0
    assert fams["omerta_rx_refused"].samples[0].labels == {"reason": "no_inbox"}
    assert fams["omerta_control_sent_bytes"].samples[0].labels == {"kind": "gossip"}
    assert fams["omerta_gossip_sent_bytes"].type == "counter" and fams["omerta_gossip_sent_bytes"].samples[0].value == 900
    assert fams["omerta_rpc_clients"].type == "gauge"  # a level, not a count
    assert fams["omerta_udp_sent"].documentation == "UDP datagrams sent."
    assert fams["omerta_some_new_counter"].type == "counter"  # a counter nobody described still appears
    assert "omerta_drop_truncated" not in fams and "omerta_control_bytes_gossip" not in fams  # not twice


def cfg(text: str) -> config.DaemonConfig:
    import tomllib

    return config.build(tomllib.loads(text), "meshd.toml")


def test_metrics_config() -> None:
    assert config.default().metrics.listen == ""  # off by default
    assert cfg('[metrics]\nlisten = "127.0.0.1:9464"\n').metrics.listen == "127.0.0.1:9464"
    assert cfg('[metrics]\nlisten = "[::1]:0"\n').metrics.listen == "[::1]:0"
    remote = cfg('[metrics]\nlisten = "192.0.2.7:9464"\nallow_remote = true\n')  # the admin said so
    assert remote.metrics.allow_remote
    with pytest.raises(config.ConfigError) as e:
        cfg('[metrics]\nlisten = "100.64.0.1:9464"\n')  # a mesh address is not loopback either
    msg = str(e.value)
    assert msg.startswith("meshd.toml: metrics.listen") and "listen on 127.0.0.1 or ::1" in msg and "allow_remote = true" in msg
    with pytest.raises(config.ConfigError, match="unknown key 'metrics.port'"):
        cfg("[metrics]\nport = 9464\n")
