"""Server lifecycle node: SharedFeatures from one or many robots -> heads, batched across
robots -> results beside each features topic. Numerics are ServerModel's."""
from __future__ import annotations

import array
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from mtl_split.msg import BackboneInfo, MultiTaskResult, SharedFeatures, TaskPrediction, TaskResult
from mtl_split_core import topics
from mtl_split_core.batching import BatchPolicy, BatchScheduler
from mtl_split_core.errors import BundleError, CodecError, MtlSplitError, SchemaError
from mtl_split_core.runtime import Prediction, Result, ServerModel
from mtl_split_core.stamps import elapsed_ms
from mtl_split_core.temporal import ResyncPending, StreamTable
from mtl_split_ros import qos
from mtl_split_ros.dense_results import DensePublishers, dense_publishers
from mtl_split_ros.batch_timer import BatchTimer
from mtl_split_core.frame_losses import StreamLosses
from mtl_split_ros.diagnostics import FRAMES_IN, FRAMES_OUT, sequence_id
from mtl_split_ros.node import ManagedNode, contained, guarded, timer
from mtl_split_ros.params import SERVER

FEATURES_TYPE = "mtl_split/msg/SharedFeatures"
# Error kinds counted on /diagnostics as errors.<kind>.
MODEL_MISMATCH = "model_mismatch"
SCHEMA_MISMATCH = "schema_mismatch"
BAD_PAYLOAD = "bad_payload"
RESYNC = "resync"  # delta frames whose reference was lost: dropped until the stream's next keyframe
EDGE_MODEL = "edge_model"  # warnings.<kind>: an edge's BackboneInfo names another model
INFERENCE = "inference"


@dataclass
class Source:
    """One robot's features topic and the result publishers beside it."""

    topic: str
    sub: Any
    info_sub: Any
    results: Any
    task_results: dict[str, Any]  # classification tasks
    dense: dict[str, DensePublishers] = field(default_factory=dict)

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
    features: np.ndarray
    ready: float  # perf_counter when decoded and queued
    transport_ms: float
    decode_ms: float

    @property
    def stream(self) -> tuple[str, str]:
        """One camera: a robot's features topic can carry several (told apart by frame_id)."""
        return self.source.topic, self.msg.header.frame_id


def task_prediction(p: Prediction) -> TaskPrediction:
    scores = array.array("f")
    scores.frombytes(np.ascontiguousarray(p.scores, np.float32).tobytes())
    return TaskPrediction(task=p.task, class_id=p.class_id, class_name=p.class_name, score=p.score, scores=scores)


class ServerNode(ManagedNode):
    spec = SERVER

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._model: ServerModel | None = None
        self._sources: dict[str, Source] = {}
        # Streams: (features topic, frame_id), one per camera; sources: features topics. A camera
        # heard within the last second (BatchPolicy.active_window_s) is waited for.
        self._batcher: BatchScheduler[Item] | None = None
        self._batch_timer: BatchTimer[Item] | None = None
        self._discovery_timer: Any = None

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
        for topic in self.values["features_topics"]:
            self._serve(self.resolve_topic_name(topic))
        # Also without discovery: the timer checks the served topics' publishers.
        self._discover()
        self._discovery_timer = self.create_timer(self.values["discovery_period_s"], self._discover)
        return super().on_activate(state)

    def apply_live(self, name: str, value: Any) -> None:
        super().apply_live(name, value)
        if name == "discovery_period_s" and self._discovery_timer is not None:
            self._discovery_timer.timer_period_ns = int(value * 1e9)
            self._discovery_timer.reset()

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._discovery_timer is not None:
            self.destroy_timer(self._discovery_timer)
            self._discovery_timer = None
        if self._batcher is not None:
            self.diag.drop("deactivated", len(self._batcher.clear()))
            self._batch_timer.tick()  # nothing waits: stops the timer
        if self._model is not None and self._model.temporal is not None:
            self._model.temporal.streams.clear()
        for s in self._sources.values():
            self.destroy_subscription(s.sub)
            self.destroy_subscription(s.info_sub)
            for pub in (s.results, *s.task_results.values(), *(p for d in s.dense.values() for p in d.publishers())):
                self.destroy_publisher(pub)
        self._sources.clear()
        return super().on_deactivate(state)

    def _release(self) -> None:
        if self._batch_timer is not None:
            self._batch_timer.destroy()
        self._batch_timer = self._batcher = self._model = None

    # --- sources --------------------------------------------------------------------------

    @contained(frames=timer)
    def _discover(self) -> None:
        """Serve every SharedFeatures topic named .../mtl_split/features in the graph (with
        discover:=true), and check every served topic's publishers."""
        for name, types in self.get_topic_names_and_types() if self.values["discover"] else ():
            if name.endswith("/" + topics.FEATURES) and FEATURES_TYPE in types and name not in self._sources:
                self._serve(name)
        for topic in self._sources:
            self._check_publishers(topic)

    def _check_publishers(self, topic: str) -> None:
        """A publisher of another SharedFeatures definition (another mtl_split release) never
        matches our subscription, so none of its frames arrive: say so instead of staying silent."""
        ours = {str(e.topic_type_hash) for e in self.get_subscriptions_info_by_topic(topic)
                if e.node_name == self.get_name() and e.node_namespace == self.get_namespace()}
        for pub in self.get_publishers_info_by_topic(topic):
            if pub.topic_type == FEATURES_TYPE and ours and str(pub.topic_type_hash) not in ours:
                self.diag.error(topic, SCHEMA_MISMATCH, (
                    f"{pub.node_namespace.rstrip('/')}/{pub.node_name} publishes {FEATURES_TYPE} of another definition "
                    f"(type hash {pub.topic_type_hash}): another mtl_split release, whose frames cannot reach this "
                    f"server (it reads SharedFeatures schema {SharedFeatures.SCHEMA_VERSION}); run the same release "
                    "on edge and server"))

    def _serve(self, topic: str) -> None:
        if topic in self._sources:
            return
        p = self.values
        results_qos = qos.profile(p, "results")
        tasks = self._model.manifest.tasks
        results_topic = topics.results_for(topic)
        source = Source(
            topic=topic, sub=None, info_sub=None,
            results=self._results_publisher(MultiTaskResult, results_topic, results_qos),
            task_results={t.name: self._results_publisher(TaskResult, topics.task_result_for(topic, t.name),
                                                          results_qos) for t in tasks if not t.dense},
            dense={t.name: dense_publishers(self, topic, t, results_qos, self._results_publisher)
                   for t in tasks if t.dense})
        losses = StreamLosses(gap_settle_s=0.0)  # no sample-lost events here: gaps count at once
        source.sub = self.create_subscription(
            SharedFeatures, topic, lambda msg, info: self._on_features(
                msg, source, info, losses.on_message(*sequence_id(info), time.monotonic())),
            qos.profile(p, "features"), event_callbacks=qos.subscription_events(self.diag.error, topic, "features"))
        # The edge's latched BackboneInfo beside its features: a model mismatch shows before any frame.
        info_topic = topic[: -len(topics.FEATURES)] + topics.BACKBONE_INFO
        source.info_sub = self.create_subscription(
            BackboneInfo, info_topic, lambda info: self._check_edge(info, topic), qos.LATCHED)
        self._sources[topic] = source
        self.diag.info("sources", len(self._sources))
        self.get_logger().info(f"serving {topic} -> {results_topic}[/<task>]")

    def _results_publisher(self, msg_type: type, topic: str, profile: Any) -> Any:
        return self.create_publisher(msg_type, topic, profile,
                                     event_callbacks=qos.publisher_events(self.diag.error, topic, "results"))

    @contained(frames=timer)
    def _check_edge(self, info: BackboneInfo, topic: str) -> None:
        """Say (rate-limited: a rogue publisher may repeat it at any rate) when the edge behind
        a features topic runs another release or model."""
        ours = self._model.manifest.model_id
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
    def _on_features(self, msg: SharedFeatures, source: Source, info: Any, missed: dict[str, int]) -> None:
        transport_ms = elapsed_ms(msg.sent_us, self.get_clock().now().nanoseconds)
        self.diag.count(FRAMES_IN)
        self.diag.drops(missed)
        start = time.perf_counter()
        # One temporal stream per robot topic, publisher and camera frame_id (the edge's key).
        gid = info.get("publisher_gid") if hasattr(info, "get") else None
        stream = (source.topic, bytes(gid["data"]) if gid else b"", msg.header.frame_id)
        try:
            features = self._model.decode_message(msg, stream)
        except ResyncPending:
            self.diag.drop(RESYNC)  # expected after a loss: counted (dropped.resync), not logged per frame
            return
        except SchemaError as e:
            return self._drop(source, SCHEMA_MISMATCH, e)
        except BundleError as e:
            return self._drop(source, MODEL_MISMATCH, e)
        except CodecError as e:
            return self._drop(source, BAD_PAYLOAD, e)
        now = time.perf_counter()
        item = Item(source, msg, features, now, transport_ms, (now - start) * 1e3)
        self.diag.observe("transport_ms", transport_ms)
        self.diag.drop("queue_full", len(self._batcher.add(item, item.stream, source.topic)))
        self._batch_timer.tick()

    def _drop(self, source: Source, kind: str, error: Exception) -> None:
        self.diag.error(source.topic, kind, f"frame dropped: {error}")
        self.diag.drop(kind)

    @contained(frames=len)
    def _run_batch(self, items: list[Item]) -> None:
        all_tasks = self._model.manifest.task_names
        wanted = {id(it.source): it.source.wanted_tasks(all_tasks) for it in items}
        tasks = [t for t in all_tasks if any(t in w for w in wanted.values())]
        if not tasks:
            self.diag.count("unheard", len(items))  # nobody subscribes to any result of these frames
            return
        start = time.perf_counter()
        try:
            predictions = self._model.predict(np.stack([it.features for it in items]), tasks)
        except MtlSplitError as e:
            self.diag.error(self.get_name(), INFERENCE, f"{len(items)} frame(s) dropped: {e}")
            self.diag.drop(INFERENCE, len(items))
            return
        heads_ms = (time.perf_counter() - start) * 1e3
        self.diag.observe("batch_size", len(items))
        for it, frame in zip(items, predictions):
            self._publish(it, frame, wanted[id(it.source)], start, heads_ms, len(items))

    def _publish(self, it: Item, frame: dict[str, Result], tasks: list[str], batch_start: float,
                 heads_ms: float, batch_size: int) -> None:
        header, model_id = it.msg.header, self._model.manifest.model_id
        preds = {t: task_prediction(frame[t]) for t in tasks if t not in it.source.dense}
        size = (self._model.manifest.input.width, self._model.manifest.input.height)
        for t in tasks:
            if t in it.source.dense:
                it.source.dense[t].publish(frame[t], header, model_id, size)
        for t, pub in it.source.task_results.items():
            if t in preds and pub.get_subscription_count():
                pub.publish(TaskResult(header=header, model_id=model_id, prediction=preds[t]))
        if it.source.results.get_subscription_count():
            queue_ms = (batch_start - it.ready) * 1e3
            it.source.results.publish(MultiTaskResult(
                header=header, model_id=model_id, predictions=list(preds.values()),
                edge_compute_ms=it.msg.edge_compute_ms, transport_ms=it.transport_ms,
                queue_ms=queue_ms, server_compute_ms=it.decode_ms + heads_ms, batch_size=batch_size))
        self.diag.count(FRAMES_OUT)
        self.diag.observe("compute_ms", it.decode_ms + heads_ms)
