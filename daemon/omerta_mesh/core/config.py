"""CoreConfig: every timeout, budget and size limit of the core in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CoreConfig:
    # --- sessions (WireGuard's constants where they apply) -----------------------------------------------
    rekey_after_time: float = 120.0  # initiator starts a new handshake when sending on an older session
    reject_after_time: float = 180.0  # a session older than this neither sends nor receives
    rekey_after_messages: int = 1 << 60
    reject_after_messages: int = (1 << 64) - (1 << 13) - 1
    rekey_timeout: float = 5.0  # handshake retransmit interval
    rekey_attempt_time: float = 90.0  # give up on a handshake after this long
    keepalive_timeout: float = 10.0  # send a keepalive if we received but did not send for this long
    replay_window: int = 2048
    # --- handshake defence -----------------------------------------------------------------------------
    handshakes_per_second_under_load: int = 200  # above this rate, require a cookie (mac2)
    handshake_rate_per_source: float = 20.0  # tokens per second per source address
    handshake_burst_per_source: int = 40
    rate_limit_table_size: int = 4096
    cookie_secret_lifetime: float = 120.0
    # --- frames and messages ----------------------------------------------------------------------------
    max_datagram: int = 1472  # IPv4 1500 MTU minus IP and UDP headers
    max_message: int = 1 << 20  # a channel message or request body, reassembled
    max_channel_name: int = 64
    reliable_window: int = 256  # frames in flight per peer
    reliable_send_queue: int = 8192  # frames queued behind the window per peer before send() refuses
    reliable_min_rto: float = 0.2
    reliable_max_rto: float = 5.0
    reliable_initial_rto: float = 0.5
    reliable_ack_delay: float = 0.01
    reliable_give_up: float = 30.0  # a frame unacked for this long fails its message
    reassembly_per_peer_bytes: int = 2 << 20
    reassembly_total_bytes: int = 32 << 20
    reassembly_timeout: float = 30.0
    request_timeout: float = 10.0
    max_pending_requests: int = 1024
    max_events: int = 100_000  # events the caller has not yet pulled; oldest dropped beyond this
    # --- peers --------------------------------------------------------------------------------------------
    max_peers_per_network: int = 4096
    max_endpoints_per_peer: int = 8
    initiation_attempts: int = 18  # ~90 s at rekey_timeout

    def with_(self, **changes: object) -> "CoreConfig":
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_CONFIG = CoreConfig()
