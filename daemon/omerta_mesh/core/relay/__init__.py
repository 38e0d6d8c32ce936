"""Relaying, as two owned sub-machines: ``client.RelayClient`` (reaching peers through relays: which relay
paths a peer has, whether they are usable, wrapping datagrams for them) and ``server.RelayServer`` (forwarding
for others: whether this node offers to relay, the forwarding checks, per-client quotas). Neither holds a
reference to ``Mesh``: they take inputs and ``now`` and put what should happen into an ``Outbox``."""
