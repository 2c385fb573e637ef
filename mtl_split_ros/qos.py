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

# BackboneInfo: the last message waits for late subscribers.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
_RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def profile(params: Mapping[str, Any], group: str) -> QoSProfile:
    """Keep-last, volatile QoS of a topic group from its parameters."""
    depth = int(params[f"{group}_qos_depth"])
    if depth < 1:
        raise ValueError(f"{group}_qos_depth must be >= 1, got {depth}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=_RELIABILITY[params[f"{group}_qos_reliability"]])


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
