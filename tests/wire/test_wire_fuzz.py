"""Hypothesis fuzzing of every wire parser, encoder/decoder round trips, and Mesh.receive_datagram.

Parsers may only succeed or raise their module's error type (WireError, InviteError, UsageError); anything
else would escape the receive path as a crash. The mesh itself must swallow arbitrary datagrams without
raising, without an internal error, and keep working afterwards.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import A_ADDR, B_ADDR, Pair
from omerta_mesh.core import events as ev
from omerta_mesh.core.errors import InviteError, UsageError, WireError
from omerta_mesh.core.ids import NetworkId, NodeId, b32encode
from omerta_mesh.core.wire import frames as fw
from omerta_mesh.core.wire import handshake as hw
from omerta_mesh.core.wire import packet as pw
from omerta_mesh.core.wire import streams as sw
from omerta_mesh.core.wire.invite import INVITE_VERSION, PREFIX, Invite, _checksum, decode_invite, encode_invite

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BYTE_PARSERS = [
    pw.packet_type,
    pw.decode_transport,
    hw.decode_init,
    hw.decode_resp,
    hw.decode_cookie_reply,
    fw.decode_data,
    fw.decode_ack,
    fw.decode_refuse,
    fw.decode_probe,
    fw.decode_natprobe,
    fw.decode_relay,
    fw.frame_type,
]
HEADERS = [bytes((t, pw.VERSION, 0, 0)) for t in pw.PacketType]
FRAME_TYPES = [bytes((int(t),)) for t in fw.FrameType]
ANY_BYTES = st.binary(max_size=400)


def _prefixed(prefixes: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(lambda p, body: p + body, st.sampled_from(prefixes), ANY_BYTES)


# Random bytes, and random bodies behind each valid packet header / frame type byte, of exact lengths too.
PACKETS = st.one_of(
    ANY_BYTES,
    _prefixed(HEADERS),
    _prefixed(FRAME_TYPES),
    st.builds(lambda h, n, r: (h + r.randbytes(n))[:n], st.sampled_from(HEADERS),
              st.sampled_from([hw.INIT_LEN, hw.RESP_LEN, hw.COOKIE_REPLY_LEN, pw.TRANSPORT_OVERHEAD]), st.randoms()),
)


# ---------------------------------------------------------------------------------------------- parsers
@pytest.mark.parametrize("parse", BYTE_PARSERS, ids=lambda f: f.__name__)
@FUZZ
@given(data=PACKETS)
def test_byte_parsers_only_raise_wire_error(parse, data: bytes) -> None:
    try:
        parse(data)
    except WireError as e:
        assert e.reason is not None


@FUZZ
@given(kind=st.sampled_from(list(fw.MessageKind)), chunk=ANY_BYTES, max_message=st.integers(0, 1 << 21))
def test_message_header_parser_only_raises_wire_error(kind, chunk: bytes, max_message: int) -> None:
    try:
        header, body = fw.decode_message_header(kind, chunk, max_message)
    except WireError:
        return
    assert header.total_len <= max_message
    assert len(body) <= header.total_len
    fw.check_channel(header.channel)  # a parsed channel name is always a valid one


@FUZZ
@given(text=st.one_of(st.text(max_size=200),
                     st.builds(lambda s: PREFIX + s, st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567 \n=", max_size=200))))
def test_invite_parser_only_raises_invite_error(text: str) -> None:
    try:
        inv = decode_invite(text)
    except InviteError as e:
        assert str(e)
        return
    assert len(inv.network_key) == 32


@FUZZ
@given(body=st.binary(min_size=0, max_size=200))
def test_invite_parser_with_valid_checksum_over_garbage(body: bytes) -> None:
    """Garbage that passes the checksum reaches the field parser: still only InviteError."""
    raw = bytes((INVITE_VERSION,)) + body
    text = PREFIX + b32encode(raw + _checksum(raw))
    try:
        inv = decode_invite(text)
    except InviteError as e:
        assert "invite" in str(e)
        return
    assert encode_invite(inv) == text  # anything accepted is canonical


@pytest.mark.parametrize("parse", [NodeId.parse, NetworkId.parse], ids=["NodeId", "NetworkId"])
@FUZZ
@given(text=st.one_of(st.text(max_size=80), st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567=", max_size=60)))
def test_id_parsers_only_raise_usage_error(parse, text: str) -> None:
    try:
        parsed = parse(text)
    except UsageError as e:
        assert "not a" in str(e)
        return
    assert parse(parsed.text()) == parsed


# ---------------------------------------------------------------------------------------------- round trips
U64 = st.integers(0, (1 << 64) - 1)
U32 = st.integers(0, (1 << 32) - 1)


@FUZZ
@given(seq=U64, first=st.booleans(), last=st.booleans(), reset=st.booleans(), kind=st.sampled_from(list(fw.MessageKind)), chunk=ANY_BYTES)
def test_data_frame_round_trip(seq, first, last, reset, kind, chunk) -> None:
    raw = fw.encode_data(seq, first, last, kind, chunk, reset=reset)
    assert fw.frame_type(raw) is fw.FrameType.DATA
    assert fw.decode_data(raw) == fw.DataFrame(seq, first, last, kind, chunk, reset)


@FUZZ
@given(node=st.binary(min_size=32, max_size=32), dgram=st.binary(min_size=4, max_size=400), relayed=st.booleans(), hops=st.integers(0, 255))
def test_relay_frame_round_trip_carries_version_and_hop_limit(node, dgram, relayed, hops) -> None:
    raw = fw.encode_relay(node, dgram, relayed=relayed, hops=hops)
    assert raw[1] == fw.RELAY_VERSION
    assert fw.decode_relay(raw) == fw.RelayFrame(relayed, hops, node, dgram)
    assert fw.decode_relay(fw.encode_relay(node, dgram)).hops == fw.RELAY_HOPS == 1
    for version in (0, 2, 255):  # another version is refused, never misread
        with pytest.raises(WireError):
            fw.decode_relay(raw[:1] + bytes((version,)) + raw[2:])


@FUZZ
@given(next_seq=U64, sack=U64)
def test_ack_round_trip(next_seq, sack) -> None:
    raw = fw.encode_ack(next_seq, sack)
    assert fw.frame_type(raw) is fw.FrameType.ACK
    assert fw.decode_ack(raw) == fw.AckFrame(next_seq, sack)
    with pytest.raises(WireError):
        fw.decode_ack(raw + b"\x00")


@FUZZ
@given(seq=U64, code=st.sampled_from(list(fw.RefuseCode)), reason=st.text(max_size=300))
def test_refuse_round_trip_keeps_a_printable_reason_of_whole_characters(seq, code, reason) -> None:
    raw = fw.encode_refuse(seq, code, reason)
    assert fw.frame_type(raw) is fw.FrameType.REFUSE and len(raw) <= 10 + fw.MAX_REASON
    got = fw.decode_refuse(raw)
    assert (got.seq, got.code) == (seq, code)
    assert got.reason.isprintable() and got.reason
    shown = reason.encode("utf-8", "replace").decode("utf-8")
    if len(shown.encode()) <= fw.MAX_REASON and shown.isprintable() and shown:
        assert got.reason == shown
    assert fw.decode_refuse(raw[:9] + b"\xee" + raw[10:]).code is fw.RefuseCode.OTHER  # an unknown code: another reason
    with pytest.raises(WireError):
        fw.decode_refuse(raw[:9])


@FUZZ
@given(sid=U32, reason=st.text(max_size=300))
def test_stream_reset_keeps_a_printable_reason_of_whole_characters(sid, reason) -> None:
    got_sid, rest = sw.decode_id(sw.encode_reset(sid, reason))
    text = sw.decode_reset(rest)
    assert got_sid == sid and len(rest) <= fw.MAX_REASON and text.isprintable()
    shown = reason.encode("utf-8", "replace").decode("utf-8")
    if len(shown.encode()) <= fw.MAX_REASON and shown.isprintable():
        assert text == shown
    # a peer's reason reaches a user's terminal (omertactl connect): its control characters do not
    assert sw.decode_reset(b"\x1b[2Jgone\x07") == "\ufffd[2Jgone\ufffd"


@FUZZ
@given(pid=U32, pong=st.booleans(), pad=st.integers(0, 64))
def test_probe_round_trip(pid, pong, pad) -> None:
    raw = fw.encode_probe(pid, pong=pong, pad=pad)
    assert len(raw) == (5 if pong else 5 + pad)  # only a PING is padded
    assert fw.frame_type(raw) is (fw.FrameType.PONG if pong else fw.FrameType.PING)
    assert fw.decode_probe(raw) == fw.ProbeFrame(pong, pid)


@FUZZ
@given(pid=U32, v6=st.booleans(), port=st.integers(0, 65535), raw_ip=st.binary(min_size=16, max_size=16))
def test_pong_carries_the_observed_source(pid, v6, port, raw_ip) -> None:
    import ipaddress

    ip = str(ipaddress.IPv6Address(raw_ip)) if v6 else str(ipaddress.IPv4Address(raw_ip[:4]))
    raw = fw.encode_probe(pid, pong=True, observed=(ip, port))
    assert fw.decode_probe(raw) == fw.ProbeFrame(True, pid, (ip, port))


@FUZZ
@given(op=st.sampled_from(list(fw.NatOp)), nonce=U32, v6=st.booleans(), port=st.integers(0, 65535),
       raw_ip=st.binary(min_size=16, max_size=16))
def test_natprobe_round_trip(op, nonce, v6, port, raw_ip) -> None:
    import ipaddress

    ip = str(ipaddress.IPv6Address(raw_ip)) if v6 else str(ipaddress.IPv4Address(raw_ip[:4]))
    observed = (ip, port) if op is fw.NatOp.BOUND else None
    raw = fw.encode_natprobe(op, nonce, observed)
    assert fw.frame_type(raw) is fw.FrameType.NATPROBE
    assert fw.decode_natprobe(raw) == fw.NatProbeFrame(op, nonce, observed)
    with pytest.raises(WireError):
        fw.decode_natprobe(raw + b"\x00")  # trailing bytes
    with pytest.raises(WireError):  # BOUND needs exactly one address, the others none
        fw.decode_natprobe(fw.encode_natprobe(op, nonce, None if observed else (ip, port)))


CHANNELS = st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",), blacklist_characters="\x7f"), min_size=1, max_size=16)


@FUZZ
@given(kind=st.sampled_from(list(fw.MessageKind)), corr=U32, status=st.integers(0, 255), channel=CHANNELS, body=ANY_BYTES,
       extra=st.integers(0, 1000))
def test_message_header_round_trip(kind, corr, status, channel, body, extra) -> None:
    total = len(body) + extra
    header = fw.MessageHeader(kind, total, corr, status, channel)
    parsed, rest = fw.decode_message_header(kind, header.encode() + body, total)
    assert parsed == header and rest == body
    if total:
        with pytest.raises(WireError) as e:
            fw.decode_message_header(kind, header.encode() + body, total - 1)
        assert e.value.reason.value == "oversized"


IPV4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, (1 << 32) - 1))
IPV6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)), st.integers(0, (1 << 128) - 1))
ENDPOINTS = st.lists(st.tuples(st.one_of(IPV4, IPV6), st.integers(0, 65535)), max_size=16)
NAMES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@FUZZ
@given(key=st.binary(min_size=32, max_size=32), node=st.binary(min_size=32, max_size=32), name=NAMES, eps=ENDPOINTS)
def test_invite_round_trip(key, node, name, eps) -> None:
    inv = Invite(key, NodeId(node), name, tuple(eps))
    text = encode_invite(inv)
    assert text.startswith(PREFIX)
    if len(name.encode()) <= 64:
        assert decode_invite(text) == inv
    else:
        # an over-long name is cut to 64 bytes on a character boundary; the rest survives
        got = decode_invite(text)
        assert name.startswith(got.name) and len(got.name.encode()) <= 64
        assert (got.network_key, got.inviter, got.endpoints) == (key, NodeId(node), tuple(eps))


@pytest.mark.parametrize("ch", ["\u00e9", "\u20ac", "\U0001F600"], ids=["2-byte", "3-byte", "4-byte"])
@pytest.mark.parametrize("n", range(58, 66))
def test_invite_long_unicode_name_cut_inside_a_character_still_decodes(n: int, ch: str) -> None:
    """Regression: the 64-byte cut of a long name used to split a UTF-8 character, so the invite we
    produced could not be decoded ("malformed although its checksum matches")."""
    name = "a" * n + ch * 4
    inv = Invite(bytes(32), NodeId(bytes(range(32))), name, (("192.0.2.1", 1),))
    got = decode_invite(encode_invite(inv))
    assert name.startswith(got.name)
    assert 64 - len(ch.encode()) < len(got.name.encode()) <= 64


# ---------------------------------------------------------------------------------------------- the mesh
_PAIR: list[Pair] = []


def _fuzz_pair() -> Pair:
    """One connected pair shared by the mesh fuzzers (connecting costs more than an example)."""
    if not _PAIR:
        p = Pair("fuzz")
        p.connect()
        _PAIR.append(p)
    return _PAIR[0]


def _still_works(p: Pair, tag: bytes) -> None:
    got_b, got_a = len(p.of(p.b, ev.ChannelMessage)), len(p.of(p.a, ev.ChannelMessage))
    p.a.send(p.b.node_id, "chat", tag, p.now)
    p.b.send(p.a.node_id, "chat", tag, p.now)
    p.advance(p.now + 1)
    assert [e.data for e in p.of(p.b, ev.ChannelMessage)][got_b:] == [tag]
    assert [e.data for e in p.of(p.a, ev.ChannelMessage)][got_a:] == [tag]


def _no_internal_errors(p: Pair) -> None:
    for m in (p.a, p.b):
        assert m.counters["drop.internal_error"] == 0, m.last_internal_error


MESH_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@MESH_FUZZ
@given(batch=st.lists(PACKETS, min_size=1, max_size=8))
def test_mesh_swallows_arbitrary_datagrams(batch) -> None:
    p = _fuzz_pair()
    drops = [m.counters.total_drops() for m in (p.a, p.b)]
    for data in batch:
        p.b.receive_datagram(data, A_ADDR, None, p.now)  # from the peer's own address
        p.a.receive_datagram(data, ("203.0.113.9", 9), None, p.now)
    _no_internal_errors(p)
    # every one of them was refused under a named reason (none can authenticate)
    assert [m.counters.total_drops() for m in (p.a, p.b)] == [d + len(batch) for d in drops]
    _still_works(p, b"after garbage")


@MESH_FUZZ
@given(body=ANY_BYTES, which=st.integers(0, 15), counter=st.integers(0, (1 << 64) - 1))
def test_mesh_swallows_forged_transport_for_live_sessions(body, which, counter) -> None:
    """Transport packets naming a live receiver index, so the fuzz gets past the index lookup."""
    p = _fuzz_pair()
    targets = [(m, s.local_index) for m in (p.a, p.b) for peer in m.peers() for s in peer.sessions()]
    m, idx = targets[which % len(targets)]
    before = m.counters.total_drops()
    m.receive_datagram(pw.encode_transport_header(idx, counter) + body, B_ADDR, None, p.now)
    _no_internal_errors(p)
    assert m.counters.total_drops() == before + 1
    _still_works(p, b"after forgeries")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise=st.binary(min_size=hw.NOISE_MSG1_LEN, max_size=hw.NOISE_MSG1_LEN), sender=U32)
def test_mesh_swallows_garbage_initiation_from_a_member(noise, sender) -> None:
    """A member knows the mac1 key, so its garbage reaches Noise (costing a DH) and must still be dropped."""
    p = _fuzz_pair()
    net = p.a.networks[p.net.id.raw]
    data, _ = hw.encode_init(sender, noise, net.mac1_key(p.a.identity.public), None)
    before = p.a.counters["drop.handshake_failed"]
    p.a.receive_datagram(data, ("203.0.113.9", 9), None, p.now)
    _no_internal_errors(p)
    assert p.a.counters["drop.handshake_failed"] == before + 1
    _still_works(p, b"after a bad member")


def test_mesh_drops_known_garbage_by_name() -> None:
    p = Pair("fuzz-control")
    p.connect()
    cases = {
        b"": "truncated",
        b"\x04": "truncated",
        b"\x01\x01\x00\x00" + bytes(hw.INIT_LEN - 4): "bad_mac1",
        b"\x09\x01\x00\x00": "unknown_type",
        b"\x01\x02\x00\x00": "unknown_type",
        b"\x02\x01\x00\x01" + bytes(hw.RESP_LEN - 4): "bad_reserved",
        b"\x04\x01\x00\x00" + bytes(40): "unknown_receiver",
        b"\x03\x01\x00\x00" + bytes(hw.COOKIE_REPLY_LEN - 4): "unknown_receiver",
    }
    for data, reason in cases.items():
        before = p.b.counters["drop." + reason]
        p.b.receive_datagram(data, A_ADDR, None, p.now)
        assert p.b.counters["drop." + reason] == before + 1, (data[:4], reason)
    _no_internal_errors(p)
    _still_works(p, b"control")
