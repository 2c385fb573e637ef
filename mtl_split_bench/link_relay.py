"""Link emulator: a relay node that carries one topic across an emulated network link.

It subscribes to a topic (any message type, kept serialized), and republishes each message
on another topic when the emulated link would have delivered it:

- bandwidth: a FIFO transmitter of `mbps` Mbit/s; a message occupies it for bytes*8/rate,
  so messages queue behind each other (serialization delay), and a message that would wait
  longer than `max_queue_ms` is dropped on arrival (a drop-tail router buffer);
- delay and jitter: one-way propagation delay plus Gaussian jitter (>= 0), order preserved;
- loss: each MTU-sized packet of a message is lost with probability `loss`. Best effort
  (default): a message with a lost packet is lost, so large messages suffer more, as a
  fragmented datagram does. Reliable (`--reliable`, what a reliable DDS writer does): every
  lost packet is sent again one round trip (2 x delay) later, costing link time too; a
  packet still lost after MAX_TRIES sends loses its message.

Why a relay and not `tc`: netem (delay, jitter, loss) does not exist in this kernel, and tc
tbf only shapes traffic inside a network namespace; the relay works anywhere DDS does, and
the edge and server nodes run unchanged on either side of it.

    python -m mtl_split_bench.link_relay --in /robot/mtl_split/features \\
        --out /link/mtl_split/features --type mtl_split/msg/SharedFeatures --mbps 5.85 --delay-ms 25

On SIGINT it prints one JSON line of counters (offered, delivered, lost, queue_dropped, ...).
"""
from __future__ import annotations

import argparse
import heapq
import importlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class LinkProfile:
    name: str = "link"
    mbps: float | None = None  # None: unlimited
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0  # per-packet loss probability
    mtu: int = 1500
    max_queue_ms: float = 500.0
    reliable: bool = False  # retransmit lost packets instead of losing the message

    def __post_init__(self) -> None:
        if self.mbps is not None and self.mbps <= 0:
            raise ValueError(f"link rate must be > 0 Mbit/s, got {self.mbps}")
        if not 0 <= self.loss < 1:
            raise ValueError(f"loss must be in [0, 1), got {self.loss}")
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.mtu <= 0 or self.max_queue_ms < 0:
            raise ValueError("delay, jitter and max queue must be >= 0 and the MTU > 0")


MAX_TRIES = 8


@dataclass
class LinkStats:
    offered: int = 0
    delivered: int = 0
    lost: int = 0
    queue_dropped: int = 0
    bytes_offered: int = 0
    retransmitted_packets: int = 0
    max_queue_ms: float = 0.0


@dataclass
class Link:
    """The link model alone (no ROS): offer a message, learn when it arrives (or that it does not)."""

    profile: LinkProfile
    seed: int = 0
    stats: LinkStats = field(default_factory=LinkStats)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._busy_until = 0.0  # when the transmitter has sent everything queued so far
        self._last_arrival = 0.0

    def offer(self, nbytes: int, now: float) -> float | None:
        """Arrival time (same clock as now, seconds) of a message of nbytes sent at now; None if dropped."""
        p = self.profile
        self.stats.offered += 1
        self.stats.bytes_offered += nbytes
        start = max(now, self._busy_until)
        wait_ms = (start - now) * 1e3
        if wait_ms > p.max_queue_ms:
            self.stats.queue_dropped += 1
            return None
        self.stats.max_queue_ms = max(self.stats.max_queue_ms, wait_ms)
        packets = max(1, math.ceil(nbytes / p.mtu))
        resent, rounds = self._losses(packets)
        if resent is None:
            self._busy_until = start + self._tx(nbytes)  # it still used the link's time
            self.stats.lost += 1
            return None
        self._busy_until = start + self._tx(nbytes + resent * min(nbytes, p.mtu))
        delay = max(0.0, p.delay_ms + p.jitter_ms * self._rng.standard_normal()) / 1e3
        arrival = self._busy_until + delay + rounds * 2 * p.delay_ms / 1e3
        arrival = max(arrival, self._last_arrival)  # a link does not reorder
        self._last_arrival = arrival
        self.stats.delivered += 1
        return arrival

    def _tx(self, nbytes: int) -> float:
        return nbytes * 8 / (self.profile.mbps * 1e6) if self.profile.mbps else 0.0

    def _losses(self, packets: int) -> tuple[int | None, int]:
        """(packets sent again, retransmission rounds); (None, 0) if the message is lost."""
        loss = self.profile.loss
        if not loss:
            return 0, 0
        if not self.profile.reliable:
            return (None, 0) if self._rng.random() < 1 - (1 - loss) ** packets else (0, 0)
        tries = self._rng.geometric(1 - loss, size=packets)  # sends until a packet gets through
        if tries.max() > MAX_TRIES:
            return None, 0
        resent = int(tries.sum()) - packets
        self.stats.retransmitted_packets += resent
        return resent, int(tries.max()) - 1


def netem_unavailable() -> str | None:
    """Why kernel link emulation (tc netem, tried in a throw-away network namespace) cannot
    be used here, or None if it can: recorded next to results made with the relay instead."""
    import shutil
    import subprocess

    if not (shutil.which("tc") and shutil.which("unshare") and shutil.which("ip")):
        return "tc, ip or unshare is not installed"
    probe = "ip link set lo up && tc qdisc add dev lo root netem delay 1ms"
    try:
        done = subprocess.run(["unshare", "--net", "sh", "-c", probe], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"probe failed ({e})"
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def message_class(type_name: str) -> type:
    """'pkg/msg/Type' -> the generated Python class."""
    try:
        pkg, kind, name = type_name.split("/")
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ValueError, ImportError, AttributeError) as e:
        raise SystemExit(f"link_relay: cannot import message type {type_name!r} ({e}); use pkg/msg/Type") from e


def relay(in_topic: str, out_topic: str, type_name: str, link: Link) -> LinkStats:
    """Run until SIGINT: receive serialized messages, hold each until its arrival time, republish."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    msg_type = message_class(type_name)
    rclpy.init()
    node = rclpy.create_node("mtl_split_link_relay")
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(msg_type, out_topic, qos)
    pending: list[tuple[float, int, bytes]] = []
    seq = [0]

    def on_msg(raw: bytes) -> None:
        arrival = link.offer(len(raw), time.monotonic())
        if arrival is not None:
            heapq.heappush(pending, (arrival, seq[0], raw))
            seq[0] += 1

    node.create_subscription(msg_type, in_topic, on_msg, qos, raw=True)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                pub.publish(heapq.heappop(pending)[2])
            wait = pending[0][0] - now if pending else 0.05
            executor.spin_once(timeout_sec=min(max(wait, 0.0), 0.05))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        print(json.dumps({"profile": asdict(link.profile), **asdict(link.stats), "in_flight": len(pending)}),
              flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return link.stats


def command(in_topic: str, out_topic: str, type_name: str, profile: LinkProfile, seed: int = 0,
            python: str = sys.executable) -> list[str]:
    """The relay's command line (for starting it as a process)."""
    cmd = [python, "-m", "mtl_split_bench.link_relay", "--in", in_topic, "--out", out_topic, "--type", type_name,
           "--delay-ms", str(profile.delay_ms), "--jitter-ms", str(profile.jitter_ms), "--loss", str(profile.loss),
           "--mtu", str(profile.mtu), "--max-queue-ms", str(profile.max_queue_ms), "--seed", str(seed)]
    return cmd + (["--mbps", str(profile.mbps)] if profile.mbps else []) + (["--reliable"] if profile.reliable else [])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mtl_split_bench.link_relay", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--in", dest="in_topic", required=True, help="topic to read (the sender's side)")
    p.add_argument("--out", dest="out_topic", required=True, help="topic to republish on (the receiver's side)")
    p.add_argument("--type", required=True, help="message type, e.g. mtl_split/msg/SharedFeatures")
    p.add_argument("--mbps", type=float, default=None, help="link rate in Mbit/s (default unlimited)")
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0, help="standard deviation of the delay")
    p.add_argument("--loss", type=float, default=0.0, help="per-packet loss probability")
    p.add_argument("--mtu", type=int, default=1500, help="packet size for the loss model (bytes)")
    p.add_argument("--max-queue-ms", type=float, default=500.0, help="longest queueing before a drop")
    p.add_argument("--reliable", action="store_true", help="retransmit lost packets (reliable DDS) instead of dropping")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        profile = LinkProfile("cli", a.mbps, a.delay_ms, a.jitter_ms, a.loss, a.mtu, a.max_queue_ms, a.reliable)
    except ValueError as e:
        p.error(str(e))
    relay(a.in_topic, a.out_topic, a.type, Link(profile, a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
