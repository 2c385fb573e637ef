"""Camera frames that never reached the edge's callback, counted with their reason.

DDS does not tell a subscriber "you missed frame N", so the count is put together from what
it does tell: each message's publisher (gid) and that publisher's sequence number, and the
subscription's sample-lost count (samples DDS saw parts of but never received whole, e.g. a
fragmented 6-MB frame with fragments missing). A gap in one publisher's sequence numbers is a
frame lost in transport if DDS reported a loss not yet explained by an earlier gap, and
otherwise a frame replaced in the subscription's keep-last history while the edge was busy
(the newest-frame policy). Frames a new camera sent before its first frame reached the edge
(published before discovery matched it with the edge, or lost then) show as the first
received sequence number minus one. What stays undetectable is listed in docs/nodes.md.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

REPLACED = "replaced"  # a newer frame replaced it before the edge took it (edge busy)
TRANSPORT = "transport"  # DDS reported it lost (never received whole)
NEW_PUBLISHER = "new_publisher"  # sent by a camera that started after the edge, before its first frame got through
REASONS = (REPLACED, TRANSPORT, NEW_PUBLISHER)
# Publishers remembered per subscription (oldest forgotten first): a camera that restarts
# gets a new gid, so without a bound a flapping driver would grow this forever.
MAX_PUBLISHERS = 64
# A gap is classified this long after it was seen: DDS's sample-lost event for the same
# frames may reach the executor after the message that revealed the gap.
GAP_SETTLE_S = 0.5


class StreamLosses:
    """The losses of one subscription. Feed it every message's (sequence number, publisher
    gid), every sample-lost total, and call flush() now and then (a timer); each call returns
    the newly counted losses by reason. Losses DDS reports count at once as transport and
    explain the newest gaps not classified yet (else the next ones); a sequence gap counts
    gap_settle_s after it was seen, minus what DDS's reports explain of it."""

    def __init__(self, gap_settle_s: float = GAP_SETTLE_S, max_publishers: int = MAX_PUBLISHERS) -> None:
        self._settle_s = gap_settle_s  # 0 where no sample-lost events are fed
        self._last: OrderedDict[bytes, int] = OrderedDict()  # publisher gid -> last sequence number
        self._max = max_publishers
        self._lost = 0  # DDS's sample-lost total
        self._unexplained = 0  # of those, the ones no sequence gap has accounted for yet
        self._gaps: deque[list] = deque()  # [seen at, frames, reason] not classified yet
        self._settled = False
        self._present: set[bytes] = set()

    def settle(self, present: Iterable[bytes]) -> None:
        """Discovery has had its time: the publishers `present` now (and any already heard)
        were there before the edge, and their earlier frames were never meant for it. A
        publisher first heard after this started after the edge: its unseen first frames count."""
        self._present = set(present) | set(self._last)
        self._settled = True

    def on_message(self, seq: int | None, gid: bytes | None, now: float) -> dict[str, int]:
        if seq and gid:  # else this RMW does not report them
            last = self._last.pop(gid, None)
            self._last[gid] = seq
            if len(self._last) > self._max:
                self._last.popitem(last=False)
            if last is not None:
                if seq > last + 1:
                    self._gaps.append([now, seq - last - 1, REPLACED])
            else:
                # Frames before a publisher's first: counted only for a camera newer than the
                # edge, but either way they explain the losses DDS reported of them.
                new = self._settled and gid not in self._present
                self._gaps.append([now, seq - 1, NEW_PUBLISHER if new else None])
        return self.flush(now)

    def on_lost(self, total: int, now: float) -> dict[str, int]:
        """DDS's cumulative sample-lost count of the subscription."""
        new, self._lost = total - self._lost, max(total, self._lost)
        counts = self.flush(now)
        if new > 0:
            counts[TRANSPORT] = new
            for gap in reversed(self._gaps):  # most likely the gaps just seen
                taken = min(new, gap[1])
                gap[1] -= taken
                new -= taken
            self._unexplained += new
        return counts

    def flush(self, now: float) -> dict[str, int]:
        """Classify the gaps seen at least gap_settle_s ago."""
        counts: dict[str, int] = {}
        while self._gaps and now - self._gaps[0][0] >= self._settle_s:
            _, gap, reason = self._gaps.popleft()
            explained = min(gap, self._unexplained)  # counted once, as transport
            self._unexplained -= explained
            if reason is not None and gap > explained:
                counts[reason] = counts.get(reason, 0) + gap - explained
        return counts
