"""omertactl network create|join|leave|list|invite|invites|revoke-invite|remove|admin|rekey|offers|accept|own|accept-owner:
the networks this node is in."""

from __future__ import annotations

import argparse

from .. import output
from ..errors import TIMEOUT
from .common import Ctx, add_command

EXAMPLES = """\
examples:
  omertactl network create work       this node owns it: prints its id and a one-time invite (24 h)
  omertactl network create home --open
                                      an open network: the invite is the key, for anyone, forever; nobody removed
  omertactl network join omerta2-...  on another machine: join with that invite
  omertactl network list
  omertactl network invite home       the invite of an open network (its key: always the same)
  omertactl network invite work --uses 1 --expires 24h --tags web,db
                                      a fresh one-time invite of an owned network, its certificate tagged
  omertactl network invites work      the open invites this node made: token, uses left, expiry, name, tags
  omertactl network revoke-invite work 3f2a9c
                                      cancel one (by its token id or a unique prefix): it is refused as revoked
  omertactl network remove work laptop
                                      owner or admin: laptop is out of work (its sessions closed, refused from now on);
                                      the owner then rotates the network key
  omertactl network admin work bob    owner: bob may invite, renew and remove members from now on
  omertactl network rekey work        owner: rotate the key now (an invite string may have leaked)
  omertactl network invite work --to bob
                                      send bob (connected in another network) an invite, no string to copy;
  omertactl network offers            on bob: the invites sent to it
  omertactl network accept 3f2a9c01   and join with one
  omertactl network own home          on the machine that created the open network home: own it (members follow
                                      and get certificates; owned after [node] owner_transition, 14 days)
  omertactl network accept-owner home 3f2a9c01
                                      follow a claim that was not followed by itself (network list shows it)
  omertactl network leave home
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "network", help="create, join, leave, list networks; make invites; remove members",
                    description="Manage the networks this node is in. Without a subcommand: list them.", examples=EXAMPLES)
    p.set_defaults(func=run_list)
    nsub = p.add_subparsers(dest="network_cmd",
                            metavar="{create,join,leave,list,invite,invites,revoke-invite,remove,admin,rekey,offers,accept,"
                                    "own,accept-owner}")
    c = nsub.add_parser("create", parents=[common], help="create a network this node owns; prints its id and an invite",
                        description="Create a network with a fresh random key, owned by this node: every member holds a "
                                    "certificate this node (or an admin) signed, each invite is a fresh token with uses and "
                                    "an expiry, and members can be removed (the key is then rotated). Prints its id and a "
                                    "one-time invite to give to the machine that should join (it carries the key: keep it "
                                    "private).")
    c.add_argument("name", nargs="?", default="", metavar="NAME", help="a name for people (carried in invites)")
    kind = c.add_mutually_exclusive_group()
    kind.add_argument("--open", action="store_true",
                      help="an open network instead: its invite is its key, the same for anyone and forever, and nobody "
                           "can be removed (as networks were before owned ones)")
    kind.add_argument("--owned", action="store_true", help="an owned network (the default; kept for scripts)")
    c.set_defaults(func=run_create)
    j = nsub.add_parser("join", parents=[common], help="join a network with an invite",
                        description="Join a network with an invite from one of its members.")
    j.add_argument("invite", metavar="INVITE", help="the invite string (omerta1-..., or omerta2-... or omerta3-... for an owned network)")
    j.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                   help="wait this long for the inviter to answer (0: do not wait; default 10)")
    j.set_defaults(func=run_join)
    lv = nsub.add_parser("leave", parents=[common], help="leave a network (its peers are told)",
                         description="Leave a network: its peers are told and its key is forgotten.")
    lv.add_argument("network", metavar="NETWORK", help="network name or id")
    lv.set_defaults(func=run_leave)
    ls = nsub.add_parser("list", parents=[common], help="the networks this node is in, with peer counts",
                         description="List the networks this node is in, with peer counts.")
    ls.set_defaults(func=run_list)
    inv = nsub.add_parser("invite", parents=[common], help="print an invite for a network",
                          description="Print an invite for a network this node is in (it carries the network key). For an "
                                      "owned network each invite is fresh: a signed token admitting --uses nodes until "
                                      "--expires; the options are refused for an open network.")
    inv.add_argument("network", metavar="NETWORK", help="network name or id")
    inv.add_argument("--uses", type=int, default=0, metavar="N", help="owned networks: how many nodes it admits (default 1)")
    inv.add_argument("--expires", type=duration, default=0.0, metavar="DURATION",
                     help="owned networks: how long it is valid: 90s, 30m, 24h, 7d (default 24h; at most 30d)")
    inv.add_argument("--name", default="", metavar="NAME", help="owned networks: the name its certificate gives the joiner")
    inv.add_argument("--tags", type=tag_list, default=[], metavar="TAG,TAG",
                     help="owned networks: tags its certificate carries (firewall rules: from = \"tag:NAME\")")
    inv.add_argument("--to", default=None, metavar="NODE",
                     help="send it to NODE (a peer this node is connected to in another network) instead of printing it; "
                          "its user takes it with `omertactl network accept`")
    inv.set_defaults(func=run_invite)
    ofs = nsub.add_parser("offers", parents=[common], help="invites other nodes sent this one (network invite --to)",
                          description="List the invites other nodes sent this node in-band (`network invite NETWORK --to "
                                      "NODE` there), until they expire or one is taken with `network accept`.")
    ofs.set_defaults(func=run_offers)
    acc = nsub.add_parser("accept", parents=[common], help="join with an invite another node sent this one",
                          description="Take an invite offered in-band (`network offers`) and join with it, as `network "
                                      "join` does with a pasted one.")
    acc.add_argument("offer", metavar="OFFER", help="the offer's id as `network offers` shows it, or a unique prefix")
    acc.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                     help="wait this long for the inviter to answer (0: do not wait; default 10)")
    acc.set_defaults(func=run_accept)
    ivs = nsub.add_parser("invites", parents=[common], help="the open invites this node made for an owned network",
                          description="List the invites this node made for an owned network that are neither expired, used "
                                      "up nor revoked: token id, uses left, expiry, and the certificate's name and tags.")
    ivs.add_argument("network", metavar="NETWORK", help="network name or id")
    ivs.set_defaults(func=run_invites)
    rv = nsub.add_parser("revoke-invite", parents=[common], help="cancel an open invite of an owned network",
                         description="Cancel an invite this node made: a signed revocation of its token goes to the members, "
                                     "and every admin refuses it from then on as \"revoked\".")
    rv.add_argument("network", metavar="NETWORK", help="network name or id")
    rv.add_argument("token", metavar="TOKEN", help="the token id as `network invites` shows it, or a unique prefix")
    rv.set_defaults(func=run_revoke_invite)
    rm = nsub.add_parser("remove", parents=[common], help="remove a member from an owned network (owner or admin)",
                         description="Remove a member from an owned network: a revocation signed by this node (its owner or "
                                     "an admin) goes to every member, which closes its sessions with it and refuses it "
                                     "from then on, whatever certificate or invite it still holds. Open networks cannot "
                                     "remove anyone.")
    rm.add_argument("network", metavar="NETWORK", help="network name or id")
    rm.add_argument("peer", metavar="PEER", help="the member: its name, node id or a unique prefix")
    rm.set_defaults(func=run_remove)
    ad = nsub.add_parser("admin", parents=[common], help="name a member an admin of an owned network (owner)",
                         description="Name a member an admin of an owned network this node owns: it gets an admin "
                                     "certificate over its session and may then invite nodes, renew members' certificates "
                                     "and remove members (not admins). It must be connected now.")
    ad.add_argument("network", metavar="NETWORK", help="network name or id")
    ad.add_argument("peer", metavar="PEER", help="the member: its name, node id or a unique prefix")
    ad.set_defaults(func=run_admin)
    rk = nsub.add_parser("rekey", parents=[common], help="rotate an owned network's key now (owner)",
                         description="Rotate the key of an owned network this node owns: a new key goes to every member "
                                     "(members that were away learn it at their next session while the previous key is "
                                     "still accepted, [node] key_grace). A removal rotates the key by itself; rotate by "
                                     "hand when an invite string may have leaked.")
    rk.add_argument("network", metavar="NETWORK", help="network name or id")
    rk.set_defaults(func=run_rekey)
    ow = nsub.add_parser("own", parents=[common], help="own an open network this node created (members follow)",
                         description="Claim an open network this node created, so that it becomes owned by this node: "
                                     "members that follow the claim (those this node invited, and members running an "
                                     "earlier version's state, by themselves; others when their user runs network "
                                     "accept-owner) get a member certificate from this node over their sessions. The "
                                     "network stays open until [node] owner_transition has passed (14 days by default); "
                                     "then it is owned, its key is rotated, and nodes without a certificate are left out. "
                                     "An open network an earlier version created here is claimed by the daemon itself.")
    ow.add_argument("network", metavar="NETWORK", help="network name or id")
    ow.set_defaults(func=run_own)
    ao = nsub.add_parser("accept-owner", parents=[common], help="follow an owner claim of an open network",
                         description="Follow an owner claim that reached this node but was not followed by itself (it "
                                     "did not come from the node that invited this one, or another claim came first). "
                                     "network list shows such claims; follow the one of the network's creator.")
    ao.add_argument("network", metavar="NETWORK", help="network name or id")
    ao.add_argument("owner", metavar="NODE", help="the claiming node's id or a unique prefix")
    ao.set_defaults(func=run_accept_owner)


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """90s, 30m, 24h, 7d (a bare number: seconds) -> seconds."""
    t = text.strip().lower()
    unit = UNITS.get(t[-1:], None)
    try:
        value = float(t[:-1] if unit else t) * (unit or 1)
    except ValueError:
        value = -1.0
    if not 0 < value <= 30 * 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration up to 30 days; e.g. 90s, 30m, 24h, 7d")
    return value


def _span(seconds: int) -> str:
    """7 days, 36 h, 90 s: a grace in the unit that reads best."""
    days, hours = divmod(seconds, 86400)[0], seconds / 3600
    return f"{days} day{'s' if days != 1 else ''}" if seconds % 86400 == 0 else f"{hours:g} h" if seconds >= 3600 else f"{seconds} s"


def tag_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def run_create(ctx: Ctx, args: argparse.Namespace) -> int:
    def text(r: dict) -> str:
        if not args.open:
            return "\n".join((f"created owned network {r['name'] or '(unnamed)'} ({r['network']}); this node is its owner",
                              "a one-time invite, valid 24 h (more: omertactl network invite NETWORK --uses N --expires 7d):",
                              r["invite"], f"on another machine: omertactl network join {r['invite']}"))
        return "\n".join((f"created network {r['name'] or '(unnamed)'} ({r['network']})",
                          "invite (it carries the network key: give it only to machines that should join):",
                          r["invite"], f"on another machine: omertactl network join {r['invite']}"))
    ctx.emit_text(ctx.call("network.create", {"name": args.name, "owned": not args.open}), text)
    return 0


def run_join(ctx: Ctx, args: argparse.Namespace) -> int:
    return _joined(ctx, args, ctx.call("network.join", {"invite": args.invite, "wait": args.wait}, timeout=args.wait + ctx.timeout))


def _joined(ctx: Ctx, args: argparse.Namespace, res: dict) -> int:
    """What network join and network accept say after joining."""
    if ctx.json:
        output.print_json(res, ctx.out)
        return 0
    ctx.say(f"joined network {res['name'] or '(unnamed)'} ({res['network']})")
    by = res.get("enrolled_by")
    if res["connected"] and by and by != res["inviter"]:
        ctx.say(f"enrolled by the admin {by[:12]} (the inviter {res['inviter'][:12]} did not answer) and connected to it; "
                "see `omertactl peers`")
    elif res["connected"]:
        ctx.say(f"connected to the inviter {res['inviter'][:12]}; see `omertactl peers`")
    elif args.wait > 0:
        ctx.say(f"the inviter {res['inviter'][:12]} has not answered within {args.wait:g} s; the daemon keeps trying "
                "(check it runs and is reachable; watch `omertactl peers`)")
        return TIMEOUT
    return 0


def run_leave(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.leave", {"network": args.network}),
                  lambda r: f"left network {args.network} ({r['network']})" if r["left"] else f"was not in network {args.network}")
    return 0


def run_list(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit(ctx.call("network.list"), lambda r: output.networks_table(r["networks"]))
    return 0


def run_remove(ctx: Ctx, args: argparse.Namespace) -> int:
    def text(r: dict) -> str:
        rotated = f"; the network key was rotated (key {r['epoch']})" if r.get("epoch") else ""
        return (f"removed {args.peer} ({r['peer'][:12]}) from network {args.network}: members close its sessions and refuse "
                f"it from now on{rotated}")
    ctx.emit_text(ctx.call("network.remove", {"network": args.network, "peer": args.peer}), text)
    return 0


def run_admin(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.admin", {"network": args.network, "peer": args.peer}),
                  lambda r: f"{args.peer} ({r['peer'][:12]}) is an admin of network {args.network} now: it may invite, renew "
                            "and remove members")
    return 0


def run_rekey(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.rekey", {"network": args.network}),
                  lambda r: f"network {args.network} now uses key {r['epoch']}; members get it at once, and the previous key "
                            f"is accepted for {_span(r['grace'])} more for members that are away")
    return 0


def _owned_from(r: dict) -> str:
    cert = "" if r["certified"] else "; this node has no certificate from it yet (it comes over a session with the owner)"
    return f"network {r['network'][:12]} is owned by {r['owner'][:12]} from {output.utc_minute(r['owned_from'])}Z on{cert}"


def run_own(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.own", {"network": args.network}),
                  lambda r: f"this node claims network {args.network}; members that follow get its certificate now. "
                            + _owned_from(r) + "; members without a certificate are left out then")
    return 0


def run_accept_owner(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.accept_owner", {"network": args.network, "owner": args.owner}),
                  lambda r: f"following {r['owner'][:12]}'s claim: " + _owned_from(r))
    return 0


def run_invite(ctx: Ctx, args: argparse.Namespace) -> int:
    params = {"network": args.network, "uses": args.uses or None, "expires": args.expires or None, "name": args.name or None,
              "tags": args.tags or None, "to": args.to}  # (only the options given: an open network refuses any, saying why)

    def text(r: dict) -> str:
        if r.get("sent_to"):
            return (f"sent an invite to network {args.network} to {args.to} ({r['sent_to'][:12]}); there: "
                    f"omertactl network accept {r['offer']}")
        return str(r["invite"])
    ctx.emit_text(ctx.call("network.invite", params), text)
    return 0


def run_offers(ctx: Ctx, args: argparse.Namespace) -> int:
    def text(r: dict) -> str:
        if not r["offers"]:
            return "no invites offered to this node (another node sends one with: omertactl network invite NETWORK --to NODE)"
        lines = [f"{'OFFER':<12}  {'FROM':<16}  {'NETWORK':<16}  {'KIND':<5}  EXPIRES (UTC)"]
        for o in r["offers"]:
            lines.append(f"{o['offer']:<12}  {o['sender_name'] or o['sender'][:12]:<16}  {o['name'] or o['network'][:12]:<16}  "
                         f"{'owned' if o['owned'] else 'open':<5}  {output.utc_minute(o['expires'])}")
        return "\n".join(lines + ["take one: omertactl network accept OFFER"])
    ctx.emit_text(ctx.call("network.offers"), text)
    return 0


def run_accept(ctx: Ctx, args: argparse.Namespace) -> int:
    return _joined(ctx, args, ctx.call("network.accept", {"offer": args.offer, "wait": args.wait}, timeout=args.wait + ctx.timeout))


def _invites_text(r: dict) -> str:
    if not r["invites"]:
        return "no open invites (make one: omertactl network invite NETWORK)"
    lines = [f"{'TOKEN':<32}  {'USES LEFT':<9}  {'EXPIRES (UTC)':<16}  {'NAME':<16}  TAGS"]
    for i in r["invites"]:
        when = output.utc_minute(i["expires"])
        lines.append(f"{i['token']:<32}  {str(i['uses_left']) + '/' + str(i['uses']):<9}  {when:<16}  {i['name'] or '-':<16}  "
                     f"{','.join(i['tags']) or '-'}")
    return "\n".join(lines)


def run_invites(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.invites", {"network": args.network}), _invites_text)
    return 0


def run_revoke_invite(ctx: Ctx, args: argparse.Namespace) -> int:
    ctx.emit_text(ctx.call("network.revoke_invite", {"network": args.network, "token": args.token}),
                  lambda r: f"revoked invite {r['token']} of network {args.network}: admins refuse it from now on")
    return 0
