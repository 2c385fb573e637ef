"""What a replay measured, computed once for `mtl-split evaluate` and the live benchmarks:
frames sent, answered and dropped, rates, latency per stage and bytes on the wire."""
from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import percentiles
from .replay import ReplayLog

# Stages each MultiTaskResult reports (ms), by the name the statistics give them.
STAGES = {"edge_compute": "edge_compute_ms", "transport": "transport_ms", "server_queue": "queue_ms",
          "server_compute": "server_compute_ms"}


def end_to_end_ms(log: ReplayLog) -> list[float]:
    """Publish -> results received, per answered frame in stamp order (one clock: same machine)."""
    return [(log.received_at[ns] - log.sent_at[ns]) * 1e3 for ns in sorted(log.results)]


def _median(values: list[int]) -> int | None:
    return int(np.median(values)) if values else None


def replay_stats(log: ReplayLog) -> dict[str, Any]:
    """- frames: sent, received (results), dropped (no result), foreign (results of frames
      someone else sent);
    - fps: results per second from the first frame sent to the last result received;
      camera_fps: the rate frames went out; delivered_fps: camera_fps x the answered fraction;
    - latency_ms: percentiles end to end and per stage; `other` is what the stages leave out
      (image and result transport, executors);
    - bytes_per_frame: medians of the serialized SharedFeatures and of its payload."""
    got = sorted(log.results)
    sent = sorted(log.sent_at.values())
    e2e = end_to_end_ms(log)
    stages = {name: [getattr(log.results[ns], field) for ns in got] for name, field in STAGES.items()}
    other = [total - sum(parts) for total, *parts in zip(e2e, *stages.values())]
    span = max(log.received_at.values()) - sent[0] if got else 0.0
    sending = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    camera_fps = (len(sent) - 1) / sending if sending > 0 else None
    return {
        "frames": {"sent": len(sent), "received": len(got), "dropped": len(sent) - len(got),
                   "foreign": log.foreign_results},
        "fps": round(len(got) / span, 2) if span > 0 else None,
        "camera_fps": round(camera_fps, 2) if camera_fps else None,
        "delivered_fps": round(camera_fps * len(got) / len(sent), 2) if camera_fps else None,
        "latency_ms": {"end_to_end": percentiles(e2e), **{k: percentiles(v) for k, v in stages.items()},
                       "other": percentiles(other)},
        "bytes_per_frame": {"features_message": _median(log.feature_bytes),
                            "features_payload": _median(log.payload_bytes)},
        "node_counters": log.node_counters,
    }
