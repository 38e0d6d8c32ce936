"""omertactl netcheck shows whether this node relays for others, in which mode, and why (issue 10 fault 3)."""

from __future__ import annotations

import io

from rich.console import Console

from omerta_clients import output


def render(renderable) -> str:
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None).print(renderable)
    return buf.getvalue()


def test_netcheck_text_shows_the_relay_choice_and_why() -> None:
    nc = {"status": "classified", "mapping": "none", "filtering": "none", "relay_mode": "auto", "relaying": True,
          "relay_reason": "auto: public address", "relays": []}
    text = render(output.netcheck_view(nc))
    assert "relaying" in text and "yes (auto: public address)" in text
    nc.update(relaying=False, relay_reason="auto: behind a NAT others cannot reach unasked (symmetric)")
    assert "no (auto: behind a NAT" in render(output.netcheck_view(nc))
