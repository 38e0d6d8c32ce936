"""Running nftables: a generated script through ``nft -f -`` (one transaction), a table listed as JSON.

No python3-nftables binding is installed here (and pyroute2 has no nftables), so the ``nft`` program is driven
with scripts made by pure code (``vnet/exitrules.py``). Acts on the caller's network namespace.
"""

from __future__ import annotations

import asyncio
import json
import shutil


class NftError(OSError):
    """nft failed or is missing; the message says which and the fix."""


def available() -> str | None:
    """None when ``nft`` can be run, else why not (with the fix)."""
    return None if shutil.which("nft") else "the nft program is not installed (install the nftables package)"


async def _run(args: list[str], script: str | None = None) -> str:
    if (why := available()) is not None:
        raise NftError(why)
    proc = await asyncio.create_subprocess_exec(
        "nft", *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(script.encode() if script is not None else None)
    if proc.returncode != 0:
        raise NftError(f"nft {' '.join(args)} failed: {err.decode(errors='replace').strip()[:400]}")
    return out.decode()


async def apply(script: str) -> None:
    """Run ``script`` as one transaction (all of it or nothing)."""
    await _run(["-f", "-"], script)


async def list_table(family: str, name: str) -> dict | None:
    """The table as nft's JSON, or None when it does not exist."""
    try:
        return json.loads(await _run(["-j", "list", "table", family, name]))
    except NftError as e:
        if "No such file or directory" in str(e):
            return None
        raise


def table_empty(listing: dict) -> bool:
    """From ``nft -j list table ...``: whether the table holds nothing (no chain, set, map, ...)."""
    items = listing.get("nftables", [])
    return not any(k not in ("metainfo", "table") for item in items for k in item)


async def drop_table_if_empty(family: str, name: str) -> bool:
    """Delete the table when nothing is left in it (``table_empty``); True when it was deleted. Parts that share
    a table (the exit node's ``exit_*``, the firewall's ``rules_*``) delete their own objects first, then call this."""
    listing = await list_table(family, name)
    if listing is None or not table_empty(listing):
        return False
    await apply(f"delete table {family} {name}\n")
    return True
