"""Server lifecycle node: SharedFeatures from one or many robots -> heads, batched across
robots -> results beside each features topic. Numerics are ServerModel's; which robots it
serves, and when it lets one go, is mtl_split_core.sources.Membership's.

Built for fleets (docs/nodes.md, "Fleets"): every per-robot entity is created without QoS
event handlers (the executor walks each one on every wake-up; incompatible QoS is found by
looking at the graph instead), another model's frames are filtered out by DDS before they
reach the node (a content filter on the model fingerprint), frames are decoded a batch at a
time, and a robot that leaves or goes silent is released with everything the node held for it.
"""
from __future__ import annotations

import array
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.subscription_content_filter_options import ContentFilterOptions

from mtl_split.msg import BackboneInfo, MultiTaskResult, SharedFeatures, TaskPrediction, TaskResult
from mtl_split_core import topics
from mtl_split_core.batching import BatchPolicy, BatchScheduler
from mtl_split_core.bounded import BoundedTable
from mtl_split_core.dense import scaled_size
from mtl_split_core.errors import BundleError, MtlSplitError, SchemaError
from mtl_split_core.frame_losses import StreamLosses
from mtl_split_core.runtime import Prediction, Result, ServerModel, finite_frames
from mtl_split_core.shards import parse_shard, robot_namespace, shard_of
from mtl_split_core.sources import LEFT, Membership, Robot
from mtl_split_core.stamps import elapsed_ms
from mtl_split_core.temporal import ResyncPending, StreamTable
from mtl_split_ros import qos
from mtl_split_ros.batch_timer import BatchTimer
from mtl_split_ros.dense_results import DensePublishers, dense_publishers
from mtl_split_ros.diagnostics import FRAMES_IN, FRAMES_OUT, sequence_id
from mtl_split_ros.node import ManagedNode, contained, guarded, timer
from mtl_split_ros.params import SERVER

FEATURES_TYPE = "mtl_split/msg/SharedFeatures"
# Error kinds counted on /diagnostics as errors.<kind>.
MODEL_MISMATCH = "model_mismatch"
SCHEMA_MISMATCH = "schema_mismatch"
BAD_PAYLOAD = "bad_payload"
REPEATED = "frames_repeated"  # skip frames: the previous frame's results published again, marked repeated
RESYNC = "resync"  # delta frames whose reference was lost: dropped until the stream's next keyframe
INFERENCE = "inference"
NON_FINITE = "non_finite"  # head outputs with NaN/inf: refused, never published
# Warning kinds, counted as warnings.<kind> and logged rate-limited.
EDGE_MODEL = "edge_model"  # an edge's BackboneInfo names another model
SILENT_PUBLISHER = "silent_publisher"  # a publisher none of whose frames this server could use
NOT_SERVED = "not_served"  # max_robots reached, or a listed topic that belongs to another shard
RELEASED = "released"  # dropped.<reason>: frames waiting when their robot was released
AUDIT_PER_PASS = 16  # robots whose QoS and publishers are checked per look at the graph
INFO_WAIT_S = 10.0  # how long the BackboneInfo of a robot taken on is waited for
UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"  # rmw's name for an endpoint whose node the graph does not know (yet)
SILENT_PUBLISHER_S = 5.0  # a publisher none of whose frames arrived for this long (since it was first seen) is reported
MAX_VOICES = 16  # publishers per robot whose last usable frame is remembered
FRAME_ID_KEY = 64  # longer frame_ids are keyed by a digest (a 64 KB frame_id must not be held per stream)


def frame_key(frame_id: str) -> str | bytes:
    """A camera's key within its robot: the frame_id, or a 16-byte digest of a long one."""
    return frame_id if len(frame_id) <= FRAME_ID_KEY else hashlib.blake2b(frame_id.encode(), digest_size=16).digest()


@dataclass
class Source:
    """One robot's features topic, what the node holds for it, and the publishers beside it."""

    robot: Robot
    sub: Any
    info_sub: Any
    results: Any
    task_results: dict[str, Any]  # classification tasks
    dense: dict[str, DensePublishers] = field(default_factory=dict)
    losses: StreamLosses = field(default_factory=lambda: StreamLosses(gap_settle_s=0.0))  # gaps count at once
    voices: BoundedTable[bytes, None] = field(default_factory=lambda: BoundedTable(MAX_VOICES))
    seen: BoundedTable[bytes, float] = field(default_factory=lambda: BoundedTable(MAX_VOICES))  # gid -> first seen
    reported: set[tuple[str, bytes]] = field(default_factory=set)  # incompatible peers already counted

    @property
    def topic(self) -> str:
        return self.robot.topic

    def publishers(self) -> list[Any]:
        return [self.results, *self.task_results.values(), *(p for d in self.dense.values() for p in d.publishers())]

    def wanted_tasks(self, all_tasks: list[str]) -> list[str]:
        """Tasks someone listens to: every classification task if the combined topic has
        subscribers; a dense task only when its own topic has (its images are large)."""
        combined = self.results.get_subscription_count() > 0
        return [t for t in all_tasks if (self.dense[t].wanted() if t in self.dense
                                         else combined or self.task_results[t].get_subscription_count())]


@dataclass
class Item:
    source: Source
    msg: SharedFeatures
    stream: tuple[str, str | bytes]  # (features topic, camera): a robot's topic can carry several cameras
    publisher: bytes
    ready: float  # perf_counter when queued
    transport_ms: float
    features: np.ndarray | None = None  # decoded on arrival (temporal coding), else with its batch
    source_size: tuple[int, int] = (0, 0)  # the camera frame's (width, height): the grid of dense results
    repeated: bool = False  # a skip frame: the stream's previous features, whose results are published again

    @property
    def temporal_stream(self) -> tuple[str, bytes, str | bytes]:
        """The edge's temporal stream: robot topic, publisher, camera."""
        return self.stream[0], self.publisher, self.stream[1]


def task_prediction(p: Prediction) -> TaskPrediction:
    scores = array.array("f")
    scores.frombytes(np.ascontiguousarray(p.scores, np.float32).tobytes())
    return TaskPrediction(task=p.task, class_id=p.class_id, class_name=p.class_name, score=p.score, scores=scores)


def _error_kind(e: Exception) -> str:
    return SCHEMA_MISMATCH if isinstance(e, SchemaError) else MODEL_MISMATCH if isinstance(e, BundleError) \
        else BAD_PAYLOAD


class ServerNode(ManagedNode):
    spec = SERVER

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._model: ServerModel | None = None
        self._sources: dict[str, Source] = {}
        self._membership: Membership | None = None
        self._pinned: list[str] = []  # features_topics, resolved
        # Streams: (features topic, camera), sources: features topics. A camera heard within
        # the last second (BatchPolicy.active_window_s) is waited for.
        self._batcher: BatchScheduler[Item] | None = None
        self._batch_timer: BatchTimer[Item] | None = None
        self._discovery_timer: Any = None
        self._audit_at = 0  # where the next audit of the robots starts (round robin)
        self._type_hash: str | None = None  # our SharedFeatures definition's hash in the graph

    # --- lifecycle ------------------------------------------------------------------------

    @guarded
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.configure_params()
        self._model = ServerModel(p["bundle"], backend=p["backend"], precision=p["tensorrt_precision"],
                                  threads=p["threads"], max_batch=p["max_batch"], max_bytes=p["max_feature_bytes"],
                                  streams=StreamTable(p["max_streams"], p["stream_max_age_s"]))
        self._batcher = BatchScheduler(BatchPolicy(max_batch=p["max_batch"], max_wait_s=p["max_wait_ms"] / 1000.0))
        self._batch_timer = BatchTimer(self, self._batcher, self._run_batch)
        m = self._model
        for key, value in [("model_id", m.manifest.model_id), ("backend", m.backend.name)]:
            self.diag.info(key, value)
        self.get_logger().info(
            f"configured: model {m.manifest.model_id}, tasks {', '.join(m.manifest.task_names)}, "
            f"backend {m.backend_reason}")
        return TransitionCallbackReturn.SUCCESS

    @guarded
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self.values
        self._membership = Membership(parse_shard(v["shard"]), v["source_timeout_s"], v["max_robots"])
        self._pinned = [self.resolve_topic_name(t) for t in v["features_topics"]]
        self._look()
        self._discovery_timer = self.create_timer(v["discovery_period_s"], self._look)
        self.diag.info("shard", v["shard"])
        return super().on_activate(state)

    def apply_live(self, name: str, value: Any) -> None:
        super().apply_live(name, value)
        if name == "discovery_period_s" and self._discovery_timer is not None:
            self._discovery_timer.timer_period_ns = int(value * 1e9)
            self._discovery_timer.reset()
        elif name == "source_timeout_s" and self._membership is not None:
            self._membership.timeout_s = value

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._discovery_timer is not None:
            self.destroy_timer(self._discovery_timer)
            self._discovery_timer = None
        if self._batcher is not None:
            self.diag.drop("deactivated", len(self._batcher.clear()))
            self._batch_timer.tick()  # nothing waits: stops the timer
        if self._model is not None and self._model.temporal is not None:
            self._model.temporal.streams.clear()
        for topic in list(self._sources):
            self._let_go(topic, "deactivated")
        if self._membership is not None:
            self._membership.clear()
        return super().on_deactivate(state)

    def _release(self) -> None:
        if self._batch_timer is not None:
            self._batch_timer.destroy()
        self._batch_timer = self._batcher = self._model = None

    # --- robots ----------------------------------------------------------------------------

    @contained(frames=timer)
    def _look(self) -> None:
        """Look at the graph: take on robots, let go of the ones that left or went silent,
        and audit a few robots' QoS and publishers."""
        graph = self._graph()
        changes = self._membership.update({t: frozenset(bytes(e.endpoint_gid) for e in pubs)
                                           for t, pubs in graph.items()}, self._pinned, self.values["discover"])
        for topic, why in changes.release:
            self._let_go(topic, "its publishers left the graph" if why == LEFT else
                         f"nothing usable from it for {self._membership.timeout_s:g} s (source_timeout_s)")
        for topic, why in changes.idle:
            self._forget_streams(topic)
        for topic in changes.serve:
            self._serve(topic, topic in self._pinned)
        for topic in changes.refused:
            self.diag.warn(topic, NOT_SERVED, f"not served: this server already serves max_robots="
                           f"{self._membership.max_robots} robots; raise max_robots or add a shard")
        for topic in changes.other_shard:
            shard = self._membership.shard
            self.diag.warn(topic, NOT_SERVED, f"listed in features_topics, but its namespace belongs to shard "
                           f"{shard_of(robot_namespace(topic), shard.count)}/{shard.count}; this server (shard "
                           f"{shard}) leaves it to that one")
        self._audit(graph)
        self.diag.info("sources", len(self._sources))

    def _graph(self) -> dict[str, list[Any]]:
        """Every SharedFeatures topic with publishers (of our definition's type name) -> their endpoints."""
        graph = {}
        for name, types in self.get_topic_names_and_types():
            if name.endswith("/" + topics.FEATURES) and FEATURES_TYPE in types:
                pubs = [e for e in self.get_publishers_info_by_topic(name) if e.topic_type == FEATURES_TYPE]
                if pubs:
                    graph[name] = pubs
        return graph

    def _serve(self, topic: str, pinned: bool) -> None:
        v = self.values
        results_qos = qos.profile(v, "results")
        tasks = self._model.manifest.tasks
        source = Source(
            robot=self._membership.take_on(topic, pinned), sub=None, info_sub=None,
            results=self._results_publisher(MultiTaskResult, topics.results_for(topic), results_qos),
            task_results={t.name: self._results_publisher(TaskResult, topics.task_result_for(topic, t.name),
                                                          results_qos) for t in tasks if not t.dense},
            dense={t.name: dense_publishers(self, topic, t, results_qos, self._results_publisher)
                   for t in tasks if t.dense})
        source.sub = self._features_subscription(topic, source)
        # The edge's latched BackboneInfo beside its features: a model mismatch shows before any
        # frame. A discovered robot's is read once (it is latched; a subscription per robot for
        # its lifetime is one more entity the executor walks on every wake-up); a listed one's
        # for as long as it is served.
        source.info_sub = self.create_subscription(
            BackboneInfo, topic[: -len(topics.FEATURES)] + topics.BACKBONE_INFO,
            lambda info: self._check_edge(info, source), qos.LATCHED, event_callbacks=qos.quiet_subscription())
        self._sources[topic] = source
        self.get_logger().info(f"serving {topic} -> {topics.results_for(topic)}[/<task>]")

    def _features_subscription(self, topic: str, source: Source) -> Any:
        """Only this model's frames reach the node: DDS drops the others (a content filter on
        the model fingerprint) before they enter the subscription's queue, so a flood of them
        can neither push this model's frames out of it nor cost the node anything; the
        publisher is reported instead (_check_publishers). Where the RMW has no content
        filter, check_model refuses and counts them right after they arrive."""
        fingerprint = self._model.fingerprint
        expression = " AND ".join(f"model_fingerprint[{i}] = %{i}" for i in range(len(fingerprint)))
        parameters = [str(b) for b in fingerprint]
        callback = lambda msg, info: self._on_features(msg, source, info)  # noqa: E731
        profile = qos.profile(self.values, "features")
        try:
            return self.create_subscription(
                SharedFeatures, topic, callback, profile, event_callbacks=qos.quiet_subscription(),
                content_filter_options=ContentFilterOptions(filter_expression=expression,
                                                            expression_parameters=parameters))
        except Exception as e:  # noqa: BLE001 - an RMW without content filters: unfiltered works too
            self.diag.warn(topic, "no_content_filter", f"the RMW refused a content filter ({e}); other models' "
                           "frames are refused after they arrive instead")
            return self.create_subscription(SharedFeatures, topic, callback, profile,
                                            event_callbacks=qos.quiet_subscription())

    def _results_publisher(self, msg_type: type, topic: str, profile: Any) -> Any:
        return self.create_publisher(msg_type, topic, profile, event_callbacks=qos.quiet_publisher())

    def _let_go(self, topic: str, why: str) -> None:
        """Release a robot: its subscriptions, publishers, waiting frames and streams, log keys."""
        source = self._sources.pop(topic, None)
        if source is None:
            return
        self.destroy_subscription(source.sub)
        self._stop_reading_info(source)
        for pub in source.publishers():
            self.destroy_publisher(pub)
        self._forget_streams(topic)
        self._membership.let_go(topic)
        self.get_logger().info(f"released {topic}: {why}")

    def _forget_streams(self, topic: str) -> None:
        """What the node holds per camera of a robot: waiting frames, temporal references, log keys."""
        if self._batcher is not None:
            self.diag.drop(RELEASED, len(self._batcher.forget(topic)))
            self._batch_timer.tick()
        if self._model is not None and self._model.temporal is not None:
            self._model.temporal.streams.forget(lambda key, state: key[0] == topic)
        self.diag.forget(topic)
        self.diag.forget(topic[: -len(topics.FEATURES)] + topics.BACKBONE_INFO)

    def _audit(self, graph: dict[str, list[Any]]) -> None:
        """A few robots per look (all of them over a few looks): peers with QoS that can never
        match, publishers of another SharedFeatures definition, publishers none of whose
        frames this server could use. Each reported once per peer (counted), logs rate-limited."""
        sources = list(self._sources.values())
        if not sources:
            return
        start = self._audit_at % len(sources)
        self._audit_at = start + AUDIT_PER_PASS
        for source in (sources[start:] + sources[:start])[:AUDIT_PER_PASS]:
            if not source.robot.pinned and time.monotonic() - source.robot.since > INFO_WAIT_S:
                self._stop_reading_info(source)  # an edge that publishes no BackboneInfo
            publishers = graph.get(source.topic, [])
            self._check_peers(source, source.topic, publishers, qos.profile(self.values, "features"), "publisher",
                              "features")
            for pub in source.publishers():
                if pub.qos_profile.durability == qos.LATCHED.durability:
                    continue  # label_info: latched on purpose
                self._check_peers(source, pub.topic_name, self.get_subscriptions_info_by_topic(pub.topic_name),
                                  pub.qos_profile, "subscriber", "results")
            self._check_publishers(source, publishers)

    def _check_peers(self, source: Source, topic: str, endpoints: list[Any], ours: Any, peer: str, group: str) -> None:
        for gid, policy in qos.incompatible_peers(endpoints, ours, we_publish=peer == "subscriber"):
            if (topic, gid) not in source.reported:
                source.reported.add((topic, gid))
                self.diag.error(topic, qos.INCOMPATIBLE, qos.incompatible_text(topic, group, peer, policy))

    def _check_publishers(self, source: Source, publishers: list[Any]) -> None:
        """A publisher of another SharedFeatures definition (another mtl_split release) never
        matches our subscription; one of another model is filtered out: say so instead of
        staying silent."""
        if self._type_hash is None:
            ours = [e for e in self.get_subscriptions_info_by_topic(source.topic)
                    if e.node_name == self.get_name() and e.node_namespace == self.get_namespace()]
            self._type_hash = str(ours[0].topic_type_hash) if ours else None
        now = time.monotonic()
        for pub in publishers:
            gid = bytes(pub.endpoint_gid)
            first = source.seen.get(gid, now)
            if first is None:
                first = now
                source.seen.put(gid, now, now)
            named = pub.node_name != UNKNOWN_NODE
            if not named and now - first < SILENT_PUBLISHER_S:
                continue  # the graph names a ROS node shortly after its endpoints; a plain DDS writer never
            who = f"{pub.node_namespace.rstrip('/')}/{pub.node_name}" if named else "a publisher with no ROS node name"
            if self._type_hash is not None and str(pub.topic_type_hash) != self._type_hash:
                if (source.topic, gid) not in source.reported:
                    source.reported.add((source.topic, gid))
                    self.diag.error(source.topic, SCHEMA_MISMATCH, (
                        f"{who} publishes {FEATURES_TYPE} of another definition (type hash {pub.topic_type_hash}): "
                        f"another mtl_split release, whose frames cannot reach this server (it reads SharedFeatures "
                        f"schema {SharedFeatures.SCHEMA_VERSION}); run the same release on edge and server"))
            elif (gid not in source.voices and now - first >= SILENT_PUBLISHER_S
                  and (SILENT_PUBLISHER, gid) not in source.reported):
                source.reported.add((SILENT_PUBLISHER, gid))
                self.diag.warn(source.topic, SILENT_PUBLISHER, (
                    f"{who} publishes on {source.topic}, and in {now - first:.0f} s not one of its frames "
                    f"was of this server's model: frames of another model are filtered out by their model "
                    f"fingerprint (the edge's backbone_info names its model), or it has sent none"))

    def _stop_reading_info(self, source: Source) -> None:
        if source.info_sub is not None:
            self.destroy_subscription(source.info_sub)
            source.info_sub = None

    @contained(frames=timer)
    def _check_edge(self, info: BackboneInfo, source: Source) -> None:
        """Say (rate-limited: a rogue publisher may repeat it at any rate) when the edge behind
        a features topic runs another release or model."""
        if not source.robot.pinned:
            self._stop_reading_info(source)
        topic, ours = source.topic, self._model.manifest.model_id
        if info.schema_version != SharedFeatures.SCHEMA_VERSION:
            info_topic = topic[: -len(topics.FEATURES)] + topics.BACKBONE_INFO
            self.diag.error(info_topic, SCHEMA_MISMATCH, (
                f"the edge publishing {topic} sends SharedFeatures schema {info.schema_version}, this server "
                f"reads schema {SharedFeatures.SCHEMA_VERSION}: its frames will be dropped until both run the "
                "same mtl_split release"))
        elif info.model_id != ours:
            self.diag.warn(topic, EDGE_MODEL, (
                f"the edge publishing {topic} runs model {info.model_id} ({info.backbone}), this server "
                f"{ours}: its frames will be dropped until both run the same bundle"))

    # --- frames ---------------------------------------------------------------------------

    @contained
    def _on_features(self, msg: SharedFeatures, source: Source, info: Any) -> None:
        now = time.monotonic()
        self.diag.count(FRAMES_IN)
        seq, gid = sequence_id(info)
        gid = bytes(gid) if gid is not None else b""
        self.diag.drops(source.losses.on_message(seq, gid, now))
        try:
            self._model.check_model(msg)  # before queueing: another model's frame takes no one's place
            source_size = self._model.frame_size(msg, self.values["max_pixels"])
        except MtlSplitError as e:
            return self._drop(source, _error_kind(e), e)
        self._membership.heard(source.robot, now)
        source.voices.put(gid, None, now)
        item = Item(source, msg, (source.topic, frame_key(msg.header.frame_id)), gid, time.perf_counter(),
                    elapsed_ms(msg.sent_us, self.get_clock().now().nanoseconds), source_size=source_size,
                    repeated=msg.frame == SharedFeatures.FRAME_SKIP)
        if msg.codec == SharedFeatures.CODEC_ENTROPY:
            # Temporal coding: decoded on arrival, in order, so a frame dropped later from the
            # queue does not break its stream's chain of references.
            features, [error] = self._model.decode_batch([msg], [item.temporal_stream])
            if error is not None:
                return self._refuse(item, error)
            item.features = features[0]
        self.diag.observe("transport_ms", item.transport_ms)
        self.diag.drop("queue_full", len(self._batcher.add(item, item.stream, source.topic)))
        self._batch_timer.tick()

    def _drop(self, source: Source, kind: str, error: Exception | str) -> None:
        self.diag.error(source.topic, kind, f"frame dropped: {error}")
        self.diag.drop(kind)

    def _refuse(self, item: Item, error: Exception) -> None:
        if isinstance(error, ResyncPending):
            self.diag.drop(RESYNC)  # expected after a loss: counted (dropped.resync), not logged per frame
        else:
            self._drop(item.source, _error_kind(error), error)

    @contained(frames=len)
    def _run_batch(self, items: list[Item]) -> None:
        start = time.perf_counter()
        pending = [it for it in items if it.features is None]
        decoded, errors = self._model.decode_batch([it.msg for it in pending], [it.temporal_stream for it in pending])
        error_of = {id(it): e for it, e in zip(pending, errors)}
        rows = iter(decoded)
        good, features = [], []
        for it in items:
            error = error_of.get(id(it))
            if error is not None:
                self._refuse(it, error)
                continue
            good.append(it)
            features.append(it.features if it.features is not None else next(rows))
        if not good:
            return
        decode_ms = (time.perf_counter() - start) * 1e3 / len(items)
        all_tasks = self._model.manifest.task_names
        wanted = {id(it.source): it.source.wanted_tasks(all_tasks) for it in {id(it.source): it for it in good}.values()}
        tasks = [t for t in all_tasks if any(t in w for w in wanted.values())]
        if not tasks:
            self.diag.count("unheard", len(good))  # nobody subscribes to any result of these frames
            return
        heads_start = time.perf_counter()
        try:
            outputs = self._model.run_heads(np.stack(features), tasks)
        except MtlSplitError as e:
            self.diag.error(self.get_name(), INFERENCE, f"{len(good)} frame(s) dropped: {e}")
            self.diag.drop(INFERENCE, len(good))
            return
        finite = finite_frames(outputs, len(good))
        for it in (it for it, ok in zip(good, finite) if not ok):
            self._drop(it.source, NON_FINITE, "the heads' outputs for these features contain NaN or inf "
                       "(extreme feature values?); nothing published for it")
        rows = np.flatnonzero(finite).tolist()
        frames = self._model.results(outputs, rows)
        compute_ms = decode_ms + (time.perf_counter() - heads_start) * 1e3
        self.diag.observe("batch_size", len(good))
        for i, frame in zip(rows, frames):
            it = good[i]
            self._publish(it, frame, wanted[id(it.source)], start, compute_ms, len(good))

    def _publish(self, it: Item, frame: dict[str, Result], tasks: list[str], batch_start: float,
                 compute_ms: float, batch_size: int) -> None:
        """Results of one frame on the topics that have subscribers (tasks: the ones someone wants)."""
        source, header, model_id = it.source, it.msg.header, self._model.manifest.model_id
        preds = {t: task_prediction(frame[t]) for t in tasks if t not in source.dense}
        self._publish_dense(it, frame, tasks)
        for t, pub in source.task_results.items():
            if t in preds and pub.get_subscription_count():
                pub.publish(TaskResult(header=header, model_id=model_id, prediction=preds[t], repeated=it.repeated))
        if source.results.get_subscription_count():
            source.results.publish(MultiTaskResult(
                header=header, model_id=model_id, predictions=list(preds.values()),
                edge_compute_ms=it.msg.edge_compute_ms, transport_ms=it.transport_ms,
                queue_ms=(batch_start - it.ready) * 1e3, server_compute_ms=compute_ms, batch_size=batch_size,
                repeated=it.repeated))
        self.diag.count(FRAMES_OUT)
        self.diag.count(REPEATED, int(it.repeated))
        self.diag.observe("compute_ms", compute_ms)

    def _publish_dense(self, it: Item, frame: dict[str, Result], tasks: list[str]) -> None:
        """Dense results on the camera frame's pixel grid (scaled by dense_scale), or on the
        model input's (dense_grid model, or features that name no camera frame)."""
        spec, scale = self._model.manifest.input, self.values["dense_scale"]
        on_camera = self.values["dense_grid"] == "camera" and all(it.source_size)
        size = scaled_size(it.source_size, scale) if on_camera else (spec.width, spec.height)
        for t in tasks:
            if t in it.source.dense:
                value = frame[t].in_source(spec, *it.source_size, scale) if on_camera else frame[t].value
                it.source.dense[t].publish(value, it.msg.header, self._model.manifest.model_id, size)
