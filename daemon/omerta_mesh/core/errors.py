"""Errors of the core and the named reasons for silently dropping remote input.

Two kinds of failure, as in h11:

* ``UsageError``: *our* caller misused the API (unknown peer, message too large, ...). Raised.
* Remote input that is malformed, forged, replayed or over a limit is never raised out of the core. It is
  dropped, and the drop is counted under a ``DropReason``. Parsers raise ``WireError`` internally; the
  receive path catches it and turns it into a counted drop.
"""

from __future__ import annotations

import enum


class MeshError(Exception):
    """Base class of every error the core raises to its caller."""


class UsageError(MeshError):
    """The caller used the API wrongly; the message says what to do instead."""


class WireError(MeshError):
    """A datagram or frame could not be parsed. Never escapes the receive path."""

    def __init__(self, reason: "DropReason", detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class InviteError(UsageError):
    """An invite string is malformed, mistyped or of an unknown version."""


class DropReason(enum.Enum):
    """Why a piece of remote input was dropped. Each value is a counter name."""

    TRUNCATED = "truncated"
    OVERSIZED = "oversized"
    UNKNOWN_TYPE = "unknown_type"
    BAD_RESERVED = "bad_reserved"
    BAD_MAC1 = "bad_mac1"
    COOKIE_REQUIRED = "cookie_required"
    BAD_COOKIE_REPLY = "bad_cookie_reply"
    RATE_LIMITED = "rate_limited"
    BAD_IDENTITY = "bad_identity"  # a peer's node id is no valid Ed25519 key (small order, outside the subgroup)
    DH_BUDGET = "dh_budget"  # the global Diffie-Hellman budget for initiations is spent for this moment
    HANDSHAKE_FAILED = "handshake_failed"
    HANDSHAKE_REPLAY = "handshake_replay"
    HANDSHAKE_TIE_BREAK = "handshake_tie_break"
    UNKNOWN_RECEIVER = "unknown_receiver"
    DECRYPT_FAILED = "decrypt_failed"
    REPLAYED = "replayed"
    SESSION_EXPIRED = "session_expired"
    BAD_FRAME = "bad_frame"
    UNKNOWN_FRAME = "unknown_frame"
    FRAGMENT_INVALID = "fragment_invalid"
    REASSEMBLY_LIMIT = "reassembly_limit"
    UNKNOWN_PEER = "unknown_peer"
    SELF = "self"
    RECORD_INVALID = "record_invalid"
    RECORD_STALE = "record_stale"
    RECORD_EXPIRY = "record_expiry"  # a record claiming to live longer than the maximum record lifetime
    GOSSIP_LIMIT = "gossip_limit"
    RELAY_QUOTA = "relay_quota"
    RELAY_UNKNOWN = "relay_unknown"
    RELAY_LOOP = "relay_loop"  # a relayed frame asked to be relayed again, or its hop limit is spent
    RELAY_NO_DIRECT_PATH = "relay_no_direct_path"  # the relay reaches the destination only via a relay, or not at all
    NAT_UNEXPECTED = "nat_unexpected"  # a NAT test answer we did not ask for, or a test aimed elsewhere
    IP_UNROUTED = "ip_unrouted"  # an IP frame for a network without a TUN here, or to an address nobody owns
    IP_SPOOFED = "ip_spoofed"  # an IP frame whose inner source is not the sending peer's assigned address
    EXIT_NOT_OFFERED = "exit_not_offered"  # a member's IP packet for outside the network, and we offer no exit
    IP_QUEUE_FULL = "ip_queue_full"  # received IP packets the driver had not written yet hit their bound
    STREAM_UNKNOWN = "stream_unknown"  # a stream message for a stream id we do not have (answered with a reset)
    STREAM_OVERRUN = "stream_overrun"  # stream data beyond the credit we granted, or after its close (reset)
    STREAM_LIMIT = "stream_limit"  # a stream opened past the per-peer or total stream limit (refused with a reset)
    # membership of owned networks (docs/membership.md, 2.3 and 5): why a credential or revocation was refused
    CERT_MISSING = "cert_missing"  # an owned network, and no credential came with the handshake or record
    CERT_MALFORMED = "cert_malformed"  # a certificate or credential outside its layout or bounds
    CERT_WRONG_NETWORK = "cert_wrong_network"  # a certificate of another network
    CERT_WRONG_SUBJECT = "cert_wrong_subject"  # a certificate of another node than the one presenting it
    CERT_ISSUER_NOT_ADMIN = "cert_issuer_not_admin"  # signed by a key that is neither the owner nor an admin's
    CERT_BAD_SIGNATURE = "cert_bad_signature"  # a signature that does not verify under its issuer
    CERT_NOT_YET_VALID = "cert_not_yet_valid"
    CERT_EXPIRED = "cert_expired"
    CERT_ISSUER_EXPIRED = "cert_issuer_expired"  # the admin certificate in the chain has expired
    CERT_ISSUER_REVOKED = "cert_issuer_revoked"  # the admin that signed it was revoked (and its certificates voided)
    CERT_REVOKED = "cert_revoked"  # the node or this certificate was revoked
    REVOCATION_INVALID = "revocation_invalid"  # malformed, or not signed by someone allowed to revoke that
    REVOCATION_LIMIT = "revocation_limit"  # a network's revocation list is full
    ENROL_NOT_ADMIN = "enrol_not_admin"  # an enrolment handshake to a node that is not an admin of that network
    ENROL_RATE = "enrol_rate"  # the enrolment budget (global or per source) is spent for this moment
    TOKEN_MARK_INVALID = "token_mark_invalid"  # a use mark malformed, of another network, or not signed by an admin
    TOKEN_MARK_LIMIT = "token_mark_limit"  # a network's use marks are at their bound
    REKEY_INVALID = "rekey_invalid"  # a key rotation malformed, of another network, or not signed by the owner
    OWNER_CLAIM_INVALID = "owner_claim_invalid"  # an owner claim malformed, of another network, or not signed by its owner
    INVITE_OFFER_INVALID = "invite_offer_invalid"  # an in-band invite that is not a well-formed invite string
