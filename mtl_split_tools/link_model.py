"""The split-computing literature's link model: what `mtl-split plan` ranks deployments by
and what `mtl-split bench network` compares its measurements against."""
from __future__ import annotations

# Link rates of the split-computing literature (Mbit/s).
LINKS_MBPS: dict[str, float] = {"3g": 1.1, "4g": 5.85, "wifi": 18.88}


def transfer_ms(nbytes: float, mbps: float) -> float:
    """Serialization time of nbytes on a link of mbps Mbit/s."""
    return nbytes * 8 / (mbps * 1e3)
