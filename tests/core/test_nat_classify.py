"""NAT classification from evidence (core/nat/classify.py): table tests of the pure verdict."""

from __future__ import annotations

import pytest

from omerta_mesh.core.nat.classify import Filtering, FilterTest, Mapping, NatObserver, Observation, classify

LOCAL = ("0.0.0.0", 51820)  # a wildcard-bound main socket
PROBE = ("0.0.0.0", 40123)
MAIN = ("10.0.0.2", 51820)  # how the node names its main endpoint


def obs(dst: tuple[str, int], mapped: tuple[str, int], local: tuple[str, int] = LOCAL, at: float = 0.0) -> Observation:
    return Observation(local, dst, mapped, "peer", at)


def test_no_report_is_unknown_with_a_reason() -> None:
    v = classify([], [], MAIN)
    assert v.mapping is Mapping.UNKNOWN and v.evidence == ("no peer has reported our address yet",)


def test_own_address_seen_means_no_nat() -> None:
    seen = [obs(("198.51.100.1", 1), ("10.0.0.2", 51820)), obs(("198.51.100.2", 1), ("10.0.0.2", 51820))]
    v = classify(seen, [], MAIN, frozenset({"10.0.0.2"}))
    assert v.mapping is Mapping.NONE and v.filtering is Filtering.NONE and v.label == "public"


@pytest.mark.parametrize(
    "mapped, expect",
    [
        ([("203.0.113.9", 51820)] * 3, Mapping.EIM),
        ([("203.0.113.9", 1000), ("203.0.113.9", 1000), ("203.0.113.9", 1001)], Mapping.ADM),  # ports of one IP share
        ([("203.0.113.9", 1000), ("203.0.113.9", 1001), ("203.0.113.9", 1002)], Mapping.APDM),
    ],
    ids=["eim", "adm", "apdm"],
)
def test_mapping_behaviour(mapped, expect) -> None:
    dsts = [("198.51.100.1", 1), ("198.51.100.1", 2), ("198.51.100.2", 1)]
    v = classify([obs(d, m) for d, m in zip(dsts, mapped)], [], MAIN)
    assert v.mapping is expect, v.evidence


@pytest.mark.parametrize("ports, allocation, delta", [
    ([2000, 2001, 2002, 2003], "sequential", 1), ([2000, 2002, 2004], "sequential", 2), ([2000, 41234, 9034, 60111], "random", 0)])
def test_port_allocation(ports, allocation, delta) -> None:
    v = classify([obs(("198.51.100.%d" % (i + 1), 1), ("203.0.113.9", p)) for i, p in enumerate(ports)], [], MAIN)
    assert (v.allocation, v.port_delta) == (allocation, delta)


EIM = [obs(("198.51.100.1", 1), ("203.0.113.9", 51820)), obs(("198.51.100.2", 1), ("203.0.113.9", 51820))]


def ft(kind: str, arrived: bool, at: float = 0.0) -> FilterTest:
    return FilterTest(kind, "peer", arrived, at)


@pytest.mark.parametrize(
    "tests, expect, label",
    [
        ([ft("other-port", True), ft("other-address", True)], Filtering.EIF, "full-cone"),
        ([ft("other-port", True), ft("other-address", False)], Filtering.ADF, "restricted"),
        ([ft("other-port", False), ft("other-address", False)], Filtering.APDF, "port-restricted"),
        ([ft("other-port", False)], Filtering.APDF, "port-restricted"),  # conclusive with one peer
        ([ft("other-port", True)], Filtering.UNKNOWN, "cone"),  # EIF or ADF: needs a second address
        ([ft("other-address", True)], Filtering.EIF, "full-cone"),
        ([ft("other-port", False, 1), ft("other-address", True, 1), ft("other-address", False, 9), ft("other-port", True, 9)],
         Filtering.ADF, "restricted"),
    ],
    ids=["eif", "adf", "apdf", "apdf-one-peer", "undecided", "eif-one-test", "latest-wins"],
)
def test_filtering_from_unsolicited_probes(tests, expect, label) -> None:
    v = classify(EIM, tests, MAIN)
    assert v.filtering is expect and v.label == label


def test_second_socket_observations_do_not_count_as_main_mappings() -> None:
    o = NatObserver()
    for x in EIM:
        o.observe(x)
    o.observe(obs(("198.51.100.1", 1), ("203.0.113.9", 40999), local=PROBE))  # another port: not "dependent"
    v = o.verdict(MAIN, frozenset(), PROBE)
    assert v.mapping is Mapping.EIM
    assert any(e.startswith("second port:") and "40999" in e for e in v.evidence)


def test_hairpinning_is_reported_only_behind_a_nat() -> None:
    o = NatObserver()
    for x in EIM:
        o.observe(x)
    o.hairpin = (True, 5.0)
    assert o.verdict(MAIN).hairpin is True and o.verdict(MAIN).to_dict()["hairpinning"] is True
    pub = NatObserver()
    pub.observe(obs(("198.51.100.1", 1), MAIN))
    pub.hairpin = (False, 5.0)
    assert pub.verdict(MAIN, frozenset({"10.0.0.2"})).hairpin is None


def test_a_new_public_address_resets_the_evidence() -> None:
    o = NatObserver()
    for x in EIM:
        o.observe(x)
    o.filter_tests.append(ft("other-address", True))
    o.hairpin = (True, 1.0)
    o.observe(obs(("198.51.100.1", 1), ("192.0.2.77", 51820)))  # behind another NAT now
    assert [x.mapped[0] for x in o.observations] == ["192.0.2.77"]
    assert not o.filter_tests and o.hairpin is None


def test_ipv6_reports_do_not_reset_ipv4_evidence() -> None:
    # the IPv4 and IPv6 sockets share a port number: alternating families is not a move
    o = NatObserver()
    for x in EIM:
        o.observe(x)
    o.filter_tests.append(ft("other-address", True))
    o.observe(obs(("2001:db8::1", 1), ("2001:db8::2", 51820)))
    o.observe(obs(("198.51.100.3", 1), ("203.0.113.9", 51820)))
    assert len(o.observations) == 4 and len(o.filter_tests) == 1


def test_forget_a_family() -> None:
    o = NatObserver()
    for x in EIM:
        o.observe(x)
    o.observe(obs(("2001:db8::1", 1), ("2001:db8::2", 51820)))
    o.forget({False})
    assert [x.dst[0] for x in o.observations] == ["2001:db8::1"] and not o.filter_tests
