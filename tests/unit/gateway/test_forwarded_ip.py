"""The client IP behind trusted proxies: only the entry the first trusted proxy appended is believed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.gateway.deps import forwarded_ip

PEER = "10.0.0.2"  # the load balancer


def test_no_trusted_proxy_means_the_peer_whatever_the_header_says() -> None:
    assert forwarded_ip(PEER, "203.0.113.9", 0) == PEER


def test_one_trusted_hop_believes_the_last_entry_only() -> None:
    assert forwarded_ip(PEER, "203.0.113.9", 1) == "203.0.113.9"
    assert forwarded_ip(PEER, "1.1.1.1, 203.0.113.9", 1) == "203.0.113.9"  # the client wrote 1.1.1.1


def test_two_trusted_hops_skip_the_inner_proxy() -> None:
    assert forwarded_ip(PEER, "1.1.1.1, 203.0.113.9, 10.0.0.7", 2) == "203.0.113.9"


def test_a_short_or_malformed_header_falls_back_to_the_peer() -> None:
    assert forwarded_ip(PEER, "203.0.113.9", 2) == PEER
    assert forwarded_ip(PEER, "not-an-ip", 1) == PEER
    assert forwarded_ip(PEER, None, 1) == PEER
    assert forwarded_ip(PEER, "2001:db8::1", 1) == "2001:db8::1"


@given(st.lists(st.ip_addresses().map(str), min_size=0, max_size=5), st.ip_addresses().map(str))
def test_whatever_the_client_prepends_the_trusted_entry_wins(forged: list[str], real: str) -> None:
    assert forwarded_ip(PEER, ", ".join([*forged, real]), 1) == real
