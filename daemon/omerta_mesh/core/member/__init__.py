"""Membership of owned networks (docs/membership.md): credential checks and revocation lists, pure."""
