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


def fix(policy: str, group: str, peer: str) -> str:
    """What to change for one incompatible policy; `peer` is the other side's role."""
    if policy == "RELIABILITY":
        ours = "best_effort" if peer == "publisher" else "reliable"
        return (f"set {group}_qos_reliability:={ours} on this node, or make the {peer} "
                f"{'reliable' if peer == 'publisher' else 'best effort'}")
    if policy == "DURABILITY":
        return ("this node's topics are volatile: make the subscriber volatile (e.g. "
                "`ros2 topic echo --qos-durability volatile`)")
    return f"make the {peer}'s {policy.lower()} QoS compatible with this node's (see docs/nodes.md)"


def _incompatible(report: Report, topic: str, group: str, peer: str) -> Callable[[Any], None]:
    def callback(info: Any) -> None:
        policy = getattr(info.last_policy_kind, "name", str(info.last_policy_kind)).removeprefix("RMW_QOS_POLICY_")
        report(topic, "incompatible_qos",
               f"a {peer} on {topic} has incompatible QoS ({policy}); no messages flow between "
               f"them. Fix: {fix(policy, group, peer)}")
    return callback


def subscription_events(report: Report, topic: str, group: str,
                        lost: Callable[[Any], None] | None = None) -> SubscriptionEventCallbacks:
    """Incompatible QoS reported; `lost` gets DDS's sample-lost status (total_count) if given."""
    return SubscriptionEventCallbacks(incompatible_qos=_incompatible(report, topic, group, "publisher"),
                                      message_lost=lost)


def publisher_events(report: Report, topic: str, group: str) -> PublisherEventCallbacks:
    return PublisherEventCallbacks(incompatible_qos=_incompatible(report, topic, group, "subscriber"))
