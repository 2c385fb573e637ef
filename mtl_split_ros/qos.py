"""QoS profiles from the `<group>_qos_*` parameters (see params.qos_params), and what turns
the classic silent failure — a QoS mismatch, so no message ever arrives — into a log line
that names the parameter to change: event callbacks where a node has few topics (the edge),
and a look at the graph (`incompatible_peers`) where it has many (the server: every event
handler is one more entity rclpy's executor walks on every wake-up, and at 64 robots they
cost more than the frames; measured 6.6 ms vs 0.5 ms per message)."""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from rclpy.duration import Infinite
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSCompatibility, QoSProfile, ReliabilityPolicy, \
    qos_check_compatible

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


INCOMPATIBLE = "incompatible_qos"  # the error kind


def incompatible_text(topic: str, group: str, peer: str, policy: str) -> str:
    return f"a {peer} on {topic} has incompatible QoS ({policy}); no messages flow between them. " \
           f"Fix: {fix(policy, group, peer)}"


def _incompatible(report: Report, topic: str, group: str, peer: str) -> Callable[[Any], None]:
    def callback(info: Any) -> None:
        policy = getattr(info.last_policy_kind, "name", str(info.last_policy_kind)).removeprefix("RMW_QOS_POLICY_")
        report(topic, INCOMPATIBLE, incompatible_text(topic, group, peer, policy))
    return callback


# The policy a qos_check_compatible reason names (its words, lower case) -> our policy name.
_REASON_POLICY = (("reliab", "RELIABILITY"), ("best effort", "RELIABILITY"), ("durab", "DURABILITY"),
                  ("transient", "DURABILITY"), ("volatile", "DURABILITY"), ("deadline", "DEADLINE"),
                  ("liveliness", "LIVELINESS"), ("lease", "LIVELINESS"))


def incompatible_peers(endpoints: list[Any], ours: QoSProfile, we_publish: bool) -> list[tuple[bytes, str]]:
    """(gid, policy) of each endpoint (rclpy TopicEndpointInfo of the other side of a topic)
    whose QoS can never match ours."""
    # The graph reports "no deadline / lease / lifespan" as infinite, a profile we made as 0:
    # the same thing, which qos_check_compatible would take for a mismatch.
    ours = copy.copy(ours)
    for name in ("deadline", "lifespan", "liveliness_lease_duration"):
        if getattr(ours, name).nanoseconds == 0:
            setattr(ours, name, Infinite)
    out = []
    for e in endpoints:
        pub, sub = (ours, e.qos_profile) if we_publish else (e.qos_profile, ours)
        compatible, reason = qos_check_compatible(pub, sub)
        if compatible == QoSCompatibility.ERROR:
            words = reason.lower()
            policy = next((name for key, name in _REASON_POLICY if key in words), reason.strip())
            out.append((bytes(e.endpoint_gid), policy))
    return out


def quiet_subscription() -> SubscriptionEventCallbacks:
    """No event handlers at all (not even rclpy's default ones): see incompatible_peers."""
    return SubscriptionEventCallbacks(use_default_callbacks=False)


def quiet_publisher() -> PublisherEventCallbacks:
    return PublisherEventCallbacks(use_default_callbacks=False)


def subscription_events(report: Report, topic: str, group: str,
                        lost: Callable[[Any], None] | None = None) -> SubscriptionEventCallbacks:
    """Incompatible QoS reported; `lost` gets DDS's sample-lost status (total_count) if given."""
    return SubscriptionEventCallbacks(incompatible_qos=_incompatible(report, topic, group, "publisher"),
                                      message_lost=lost)


def publisher_events(report: Report, topic: str, group: str) -> PublisherEventCallbacks:
    return PublisherEventCallbacks(incompatible_qos=_incompatible(report, topic, group, "subscriber"))
