"""Issue 10 (failover, seen in the netns failover test): after a cut direct path heals and the pair is
direct again, it must stay direct. Probes sent during the cut expired after the path answered again, read as
fresh loss, made the path DEGRADED and moved the pair back to the relay for a moment (a flap)."""

from __future__ import annotations

import pytest

from sim.test_connectivity import first_message, lab


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_healed_direct_path_is_not_left_again_for_the_relay(seed: int) -> None:
    sm, relay, a, b, net = lab("full-cone", "port-restricted", seed=seed)
    assert first_message(sm, a, b) is not None
    sm.run_for(8)
    direct = lambda: "relay" not in (sm.path_kind(a, b, net), sm.path_kind(b, a, net))  # noqa: E731
    assert direct()
    for _ in range(2):
        sm.internet.block(a.nat.ip, b.nat.ip)
        t0 = sm.now
        while sm.now - t0 < 8:
            sm.send(a, b, "s", b"x")
            sm.run_for(0.1)
        assert sm.path_kind(a, b, net) == "relay"
        sm.internet.unblock(a.nat.ip, b.nat.ip)
        t0 = sm.now
        while sm.now - t0 < 10 and not direct():
            sm.send(a, b, "s", b"x")
            sm.run_for(0.05)
        assert direct(), "never went back to direct"
        flaps = []
        t0 = sm.now
        while sm.now - t0 < 15:  # traffic keeps flowing; the healed path must keep the pair
            sm.send(a, b, "s", b"x")
            sm.run_for(0.05)
            if not direct():
                flaps.append(round(sm.now - t0, 2))
        assert flaps == [], f"back on the relay {len(flaps)} times after the heal (first at +{flaps[:1]} s)\n{sm.failure(40)}"
