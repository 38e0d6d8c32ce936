"""CoreConfig: every timeout, budget and size limit of the core in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CoreConfig:
    # --- sessions (WireGuard's constants where they apply) -----------------------------------------------
    rekey_after_time: float = 120.0  # initiator starts a new handshake when sending on an older session
    reject_after_time: float = 180.0  # a session older than this neither sends nor receives
    reject_after_messages: int = (1 << 64) - (1 << 13) - 1
    rekey_timeout: float = 5.0  # handshake retransmit interval
    rekey_attempt_time: float = 90.0  # give up on a handshake after this long
    replay_window: int = 2048
    # --- handshake defence -----------------------------------------------------------------------------
    handshakes_per_second_under_load: int = 200  # above this rate (a sliding second), require a cookie (mac2)
    under_load_hold: float = 1.0  # once under load, stay so this long after the last time the rate was over
    handshake_dh_per_second: float = 500.0  # global Diffie-Hellman budget for initiations, all sources together
    handshake_dh_burst: int = 250
    handshake_dh_reserved_per_second: float = 100.0  # more, only for peers proven by traffic, from their address
    handshake_rate_per_source: float = 20.0  # tokens per second per source address
    handshake_burst_per_source: int = 40
    rate_limit_table_size: int = 4096
    cookie_secret_lifetime: float = 120.0
    # --- frames and messages ----------------------------------------------------------------------------
    max_datagram: int = 1472  # IPv4 1500 MTU minus IP and UDP headers
    max_message: int = 1 << 20  # a channel message or request body, reassembled
    reliable_window: int = 256  # frames in flight per peer
    reliable_send_queue: int = 8192  # frames queued behind the window per peer before send() refuses
    control_send_reserve: int = 8192  # more frames control messages (streams: at most 64 x 128 KiB) may queue beyond
    reliable_min_rto: float = 0.2
    reliable_max_rto: float = 5.0
    reliable_initial_rto: float = 0.5
    reliable_ack_delay: float = 0.01
    reliable_give_up: float = 30.0  # a frame unacked for this long fails its message
    reassembly_per_peer_bytes: int = 2 << 20
    reassembly_total_bytes: int = 32 << 20
    request_timeout: float = 10.0
    max_pending_requests: int = 1024
    stream_window: int = 131072  # bytes a stream's receiver lets its sender have in flight (core/streams.py)
    max_streams_per_peer: int = 64  # open streams with one peer (both directions)
    max_streams: int = 1024  # open streams in total
    max_events: int = 100_000  # events the caller has not yet pulled; oldest dropped beyond this
    max_ip_queue: int = 4096  # received IP packets (core/ipframes.py) the driver has not drained; dropped beyond
    # --- peers --------------------------------------------------------------------------------------------
    max_peers_per_network: int = 4096  # full: an unproven peer is evicted, else one without a session (PeerTable)
    max_unproven_peers: int = 512  # peers no transport frame came from yet (all networks); the oldest is evicted
    max_endpoints_per_peer: int = 8

    # --- link health (core/peers/links.py) -----------------------------------------------------------------
    heartbeat_active: float = 1.5  # probe interval on the current path while traffic flows
    heartbeat_idle: float = 25.0  # ... and while idle (holds NAT mappings open)
    active_window: float = 10.0  # traffic within this long counts as active
    probe_timeout: float = 2.0  # an unanswered probe counts as lost after this long
    max_paths_per_peer: int = 16
    max_probes_in_flight: int = 4096
    upgrade_interval: float = 20.0  # while relayed, try to go direct after this long, then backing off
    upgrade_max_interval: float = 320.0  # ... doubling after each failed attempt up to this
    punch_schedule: tuple[float, ...] = (0.0, 0.2, 0.5, 1.0, 2.0, 3.5, 5.0)
    punch_prediction: int = 64  # at most this many predicted ports per punch attempt
    # --- relays ---------------------------------------------------------------------------------------------
    # "auto": offer to relay when public or behind an endpoint-independent mapping+filtering NAT, with the
    # auto quota; "on": whenever our mapping lets others reach us, with the full quota; "off": never.
    # (True/False are the old "on"/"off"; core/relay/server.py)
    relay: str | bool = "auto"
    relay_auto_rate: float = 500_000.0  # bytes per second per client when relaying by "auto"
    relay_auto_max_pairs: int = 16
    relay_rate: float = 4_000_000.0  # bytes per second per client
    relay_burst: float = 8_000_000.0
    relay_max_pairs: int = 64  # distinct destinations per client
    relay_clients: int = 1024
    # --- NAT tests (core/nat/probing.py) ------------------------------------------------------------------
    nat_tests: bool = True  # measure filtering and hairpinning (a second UDP socket, two peers)
    nat_test_first: float = 3.0  # first test this long after the first direct session
    nat_test_interval: float = 600.0  # then this often, and again whenever our public mapping changes
    nat_test_retry: float = 15.0  # when no suitable peers are connected yet
    nat_test_wait: float = 2.0  # after a peer confirms it sent an unsolicited probe, wait this long for it
    nat_test_answers: float = 0.2  # tests answered per second per asking peer (burst 4)
    # --- discovery (core/discovery/gossip.py) ----------------------------------------------------------------------
    gossip_interval: float = 1.0
    gossip_digest_entries: int = 256
    gossip_budget: int = 32_768  # bytes of records sent per exchange
    gossip_round_budget: int = 98_304  # gossip bytes a node sends per network per round, all peers together
    gossip_push: int = 8  # recently learnt records pushed per round
    gossip_fanout: int = 2  # members synced with per round
    gossip_answers: int = 256  # syncs answered per round; more are left for other members to answer
    gossip_new_per_origin: int = 256  # records of nodes new to us one member may bring per round
    record_lifetime: float = 3600.0
    record_refresh: float = 900.0
    neighbours: int = 6  # sessions each node keeps for gossip beyond those in use
    # --- owned networks (core/member/, docs/membership.md) ---------------------------------------------------------
    cert_clock_skew: float = 300.0  # seconds a certificate's validity is stretched at each end for clocks apart
    max_revocations: int = 4096  # per owned network; beyond, new revocations are refused and counted
    cert_lifetime: int = 30 * 86400  # seconds a member certificate lives (an invite may ask for less)
    max_token_marks: int = 4096  # invite tokens an admin keeps (issued, redeemed, with other admins' use marks)
    enrol_per_second: float = 5.0  # enrolment handshakes an admin answers per second, all sources together
    enrol_burst: int = 10
    enrol_per_source: float = 1.0  # and per source address (burst 2)
    key_grace: int = 7 * 86400  # seconds the previous key of a rotated network is still accepted (docs/membership.md 6)
    owner_transition: int = 14 * 86400  # seconds from an owner claim on an open network to its enforcement (membership.md 7)
    renew_retry: float = 3600.0  # seconds between renewal requests until an admin answers (at most 1/12 of a lifetime)

    def with_(self, **changes: object) -> "CoreConfig":
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_CONFIG = CoreConfig()
