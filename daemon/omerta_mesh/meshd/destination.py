"""What a user's name for a peer means, in every form a client may type or a SOCKS client may send.

``resolve(api, text, network)`` -> (node, network or None), or ``ApiError`` (PEER_NOT_FOUND, PEER_AMBIGUOUS,
NETWORK_NOT_FOUND, with the fix); a ``network`` the client names (``--network``) wins over the one the text implies:

* a peer's name, a local name, a full node id or a unique id prefix (``names.py``'s ``Directory`` rules), or a
  name in other letter case when it is one peer's alone (browsers and ssh lowercase host names);
* ``NAME.NETWORK``: that peer in that network (a network's name, id or id prefix), for hosts written the DNS way
  (``bravo.home``, also ``bravo.home.``); a name that itself holds dots is tried whole first;
* one of a member's mesh IPs (IPv4 or IPv6, brackets allowed), which also names the network it lives in.

Pure lookups: nothing is opened. This node is never a destination (its own name and mesh IPs are not found).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ..core.ids import NetworkId, NodeId
from .errors import ApiError, Code

if TYPE_CHECKING:
    from .api import DaemonAPI


def resolve(api: "DaemonAPI", text: str, network: str | None = None) -> tuple[NodeId, NetworkId | None]:
    node, net = _resolve(api, text)
    return node, api.resolve_network(network).id if network else net


def _resolve(api: "DaemonAPI", text: str) -> tuple[NodeId, NetworkId | None]:
    q = text.strip()
    try:
        ip = ipaddress.ip_address(q.strip("[]"))
    except ValueError:
        return _by_name(api, q[:-1] if q.endswith(".") and len(q) > 1 else q)  # (a DNS name's root dot: "bravo.home.")
    hit = api.vnet.owner_of(ip) if api.vnet is not None else None
    if hit is None or hit[0] == api.node.node_id:
        raise ApiError(Code.PEER_NOT_FOUND, f"no peer has the mesh IP {ip}", "list the peers' mesh IPs with `omertactl ip PEER`")
    return hit


def _peer(api: "DaemonAPI", q: str) -> NodeId:
    try:
        return api.resolve_peer(q)
    except ApiError:
        d = api.directory()
        folded = [n for n, name in d.shown.items() if n in d.known and name.lower() == q.lower()]
        if len(folded) == 1:
            return folded[0]
        raise


def _by_name(api: "DaemonAPI", q: str) -> tuple[NodeId, NetworkId | None]:
    try:
        return _peer(api, q), None
    except ApiError as e:
        first = e
    nets = [(n.name, str(n.id)) for n in list(api.node.core.networks.values())]
    for i, c in enumerate(q):
        suffix = q[i + 1 :]
        if c != "." or i == 0 or not any(name == suffix or nid.startswith(suffix.lower()) for name, nid in nets):
            continue  # (a cheap test first: a host name may hold a hundred dots)
        try:
            net = api.resolve_network(q[i + 1 :]).id
            node = _peer(api, q[:i])
        except ApiError:
            continue
        if api.node.peer_view(node, net) is not None or api.node.core.record_of(net, node) is not None:
            return node, net
    raise first
