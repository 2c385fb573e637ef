"""QoS profiles from the `<group>_qos_*` parameters (see params.qos_params), and event
callbacks that turn the classic silent failure — a QoS mismatch, so no message ever
arrives — into a log line that names the parameter to change."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# report(source, kind, text): the node's rate-limited error reporter (Diagnostics.error).
Report = Callable[[str, str, str], None]

_RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
_DURABILITY = {"volatile": DurabilityPolicy.VOLATILE, "transient_local": DurabilityPolicy.TRANSIENT_LOCAL}


def profile(params: Mapping[str, Any], group: str, durability: str | None = None) -> QoSProfile:
    """Keep-last QoS of a topic group; durability from the parameters if they have it."""
    depth = int(params[f"{group}_qos_depth"])
    if depth < 1:
        raise ValueError(f"{group}_qos_depth must be >= 1, got {depth}")
    dur = params.get(f"{group}_qos_durability", durability or "volatile")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=_RELIABILITY[params[f"{group}_qos_reliability"]],
        durability=_DURABILITY[dur],
    )


def _incompatible(report: Report, topic: str, group: str, peer: str) -> Callable[[Any], None]:
    def callback(info: Any) -> None:
        policy = getattr(info.last_policy_kind, "name", info.last_policy_kind)
        report(topic, "incompatible_qos",
               f"a {peer} on {topic} has incompatible QoS ({policy}); no messages flow between "
               f"them. Match the peer, e.g. {group}_qos_reliability:=best_effort on the subscriber "
               "or reliable on the publisher")
    return callback


def subscription_events(report: Report, topic: str, group: str) -> SubscriptionEventCallbacks:
    return SubscriptionEventCallbacks(incompatible_qos=_incompatible(report, topic, group, "publisher"))


def publisher_events(report: Report, topic: str, group: str) -> PublisherEventCallbacks:
    return PublisherEventCallbacks(incompatible_qos=_incompatible(report, topic, group, "subscriber"))
