"""The lifecycle base of both nodes and their `main`.

A ManagedNode declares its parameters from its params.NodeSpec, owns a Diagnostics, and
turns a failing transition (no bundle, bad parameter) into one error line and a FAILURE
return instead of a traceback. `run()` starts it as a plain node (autostart: configure +
activate) or leaves it unconfigured for a lifecycle manager.
"""
from __future__ import annotations

import functools
import math
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, ClassVar

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.signals import uninstall_signal_handlers
from rclpy.task import Future

from mtl_split_core.errors import MtlSplitError

from .diagnostics import Diagnostics
from .params import ACTIVATE, CONFIGURE, LIVE, STARTUP, NodeSpec, Param

_TYPES = {
    "bool": Parameter.Type.BOOL,
    "integer": Parameter.Type.INTEGER,
    "double": Parameter.Type.DOUBLE,
    "string": Parameter.Type.STRING,
    "string_array": Parameter.Type.STRING_ARRAY,
}
# Parameters rclpy itself handles; never "unknown".
_BUILTIN_PREFIXES = ("use_sim_time", "qos_overrides.", "start_type_description_service")

Transition = Callable[["ManagedNode", LifecycleState], TransitionCallbackReturn]


def guarded(fn: Transition) -> Transition:
    """A transition that logs an expected failure (bad bundle, bad parameter) as one line
    and returns FAILURE; the node stays up in its previous state. Anything else is a bug:
    logged with its traceback, because rclpy swallows an exception in a transition without
    a word (the transition just reports ERROR)."""
    @functools.wraps(fn)
    def wrapper(self: "ManagedNode", state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return fn(self, state)
        except (MtlSplitError, ValueError, OSError) as e:
            self.get_logger().error(f"{fn.__name__[3:]} failed: {e}")
        except Exception as e:  # noqa: BLE001 - reported, never silent
            self.get_logger().error(f"{fn.__name__[3:]} failed unexpectedly ({type(e).__name__}: {e}); "
                                    f"please report this:\n{traceback.format_exc()}")
        return TransitionCallbackReturn.FAILURE
    return wrapper


INTERNAL = "internal"  # error kind of a callback that hit a bug: counted, logged, node keeps serving


def _one(*args: Any) -> int:
    return 1


def _none(*args: Any) -> int:
    return 0


def contained(callback: Callable[..., None] | None = None, *,
              frames: Callable[..., int] = _one) -> Any:
    """A callback whose unexpected exception (a bug, or input nobody foresaw) is counted as
    errors.internal and logged with its traceback (rate-limited) instead of ending the node:
    one poisoned frame, or one bad tick of a timer, must not take the robot's perception
    down with it. `frames(*args)`: how many frames the failed call loses (counted as dropped):
    one for a message callback (the default), the batch for a batch run, none for a timer
    (`@contained(frames=timer)`)."""
    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def wrapper(self: "ManagedNode", *args: Any) -> None:
            try:
                fn(self, *args)
            except Exception as e:  # noqa: BLE001 - counted and logged, never silent
                lost = frames(*args)
                what = f"{lost} frame(s) dropped" if lost else f"{fn.__name__} failed"
                self.diag.error(self.get_name(), INTERNAL, f"{what}, unexpected {type(e).__name__}: {e}; "
                                f"please report this:\n{traceback.format_exc()}")
                self.diag.drop(INTERNAL, lost)
        return wrapper
    return decorate(callback) if callback is not None else decorate


timer = _none  # contained(frames=timer): a timer or graph callback loses no frame


def _descriptor(p: Param) -> ParameterDescriptor:
    extra = f" One of: {', '.join(repr(c) for c in p.choices)}." if p.choices else ""
    when = {LIVE: " Takes effect at once.", ACTIVATE: " Takes effect at the next activate.",
            CONFIGURE: " Takes effect at the next configure.", STARTUP: " Read at start-up only."}[p.applies]
    d = ParameterDescriptor(name=p.name, description=p.description + extra + when,
                            read_only=p.applies == STARTUP)
    if p.type == "integer" and (p.low is not None or p.high is not None):
        d.integer_range = [IntegerRange(from_value=int(p.low if p.low is not None else -(1 << 63)),
                                        to_value=int(p.high if p.high is not None else (1 << 63) - 1))]
    elif p.type == "double" and (p.low is not None or p.high is not None):
        d.floating_point_range = [FloatingPointRange(from_value=float(p.low if p.low is not None else -math.inf),
                                                     to_value=float(p.high if p.high is not None else math.inf))]
    if p.type == "double":
        # Doubles accept integers too (`-p max_wait_ms:=5`); Param.convert makes them floats,
        # and the on-set check refuses anything that is not a number.
        d.dynamic_typing = True
    return d


class ManagedNode(LifecycleNode):
    """`values`: every parameter's current value, checked against the spec. A set that
    breaks a rule, or that the node cannot apply in its lifecycle state, is refused with the
    reason and changes nothing; an accepted live one is applied by `apply_live`."""

    spec: ClassVar[NodeSpec]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.spec.name, **kwargs)
        self.values: dict[str, Any] = {}
        # Start-up values that break a rule: the default was declared instead, and configure
        # fails naming them until a valid value is set.
        self._startup_problems: dict[str, str] = {}
        overrides = getattr(self, "_parameter_overrides", {})
        for p in self.spec.params:
            self._declare(p, overrides)
        unknown = [n for n in overrides if n not in self.spec.names and not n.startswith(_BUILTIN_PREFIXES)]
        if unknown:
            self.get_logger().warning(
                f"ignoring unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"{self.spec.name} knows: {', '.join(self.spec.names)}")
        self.add_on_set_parameters_callback(self._check_set)
        self.add_post_set_parameters_callback(self._apply_set)
        self.diag = Diagnostics(self, self.values["diagnostics_period_s"])
        self.finished: Future = Future()  # done when the shutdown transition finalized the node

    def _declare(self, p: Param, overrides: dict[str, Any]) -> None:
        value = overrides[p.name].value if p.name in overrides else p.default
        if value is not None and (problem := p.problem(value)) is not None:
            self._startup_problems[p.name] = f"parameter {p.name}: {problem}"
            value = p.default
        ignore_override = p.name in self._startup_problems or p.type == "double"
        if p.type == "string_array" and value == []:
            # rclpy would infer an empty list as a byte array: declare the type, no value.
            self.declare_parameter(p.name, _TYPES[p.type], _descriptor(p), ignore_override=True)
            value = []
        else:
            self.declare_parameter(p.name, p.convert(value), _descriptor(p), ignore_override=ignore_override)
        self.values[p.name] = p.convert(value)

    @property
    def lifecycle_state(self) -> str:
        """unconfigured, inactive, active, finalized (or a transition: configuring, ...)."""
        return self._state_machine.current_state[1]

    def _check_set(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters}
        reason = self.spec.check_set(self.values, changes, self.lifecycle_state, self.get_fully_qualified_name())
        if reason is not None:
            self.get_logger().warning(f"refused to set {', '.join(changes)}: {reason}")
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _apply_set(self, parameters: list[Parameter]) -> None:
        for param in parameters:
            if param.name not in self.spec.names:
                continue
            p = self.spec.param(param.name)
            old, self.values[p.name] = self.values[p.name], p.convert(param.value)
            self._startup_problems.pop(p.name, None)
            if self.values[p.name] != old:
                self.get_logger().info(f"parameter {p.name} = {self.values[p.name]!r} (was {old!r}; "
                                       f"takes effect {'now' if p.applies == LIVE else 'at ' + p.applies})")
                if p.applies == LIVE:
                    self.apply_live(p.name, self.values[p.name])

    def apply_live(self, name: str, value: Any) -> None:
        """Apply a live parameter that changed (a subclass extends this for its own)."""
        if name == "diagnostics_period_s":
            self.diag.set_period(value)

    def configure_params(self) -> dict[str, Any]:
        """The values configure uses; ValueError naming every value that breaks a rule
        (both nodes are nothing without a bundle)."""
        problems = list(self._startup_problems.values()) or self.spec.problems(self.values)
        if problems:
            raise ValueError("; ".join(problems))
        if not self.values["bundle"]:
            raise ValueError("parameter bundle is not set; start with -p bundle:=/path/to/bundle")
        return dict(self.values)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if state.label == "active":
            self.on_deactivate(state)
        self._release()
        # The process ends once this transition's response is sent (run() spins until then).
        self.finished.set_result(True)
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Undo configure (publishers, timers, the model); both cleanup and shutdown call it."""


def run(node_cls: type[ManagedNode], args: list[str] | None = None) -> int:
    """Spin one node until Ctrl-C/SIGTERM or its lifecycle shutdown transition. Exit status 1
    if autostart fails to configure, else 0 (also when signals repeat during shutdown)."""
    rclpy.init(args=sys.argv if args is None else args)
    node = node_cls()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    status = 0
    try:
        if node.values["autostart"]:
            ok = TransitionCallbackReturn.SUCCESS
            if node.trigger_configure() != ok or node.trigger_activate() != ok:
                node.get_logger().fatal("autostart failed (see the error above); exiting")
                status = 1
        if not status:
            executor.spin_until_future_complete(node.finished)
            if node.finished.done():
                node.get_logger().info("finalized by the lifecycle shutdown transition; exiting")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _teardown(node, executor)
    return status


def _teardown(node: ManagedNode, executor: SingleThreadedExecutor) -> None:
    """Destroy the node. A second Ctrl-C (ros2 launch forwards one when stdin is not a
    terminal) or a SIGTERM meanwhile is logged, not raised; from then on, while Python
    finalizes (which restores the default handlers it installed, so a signal would kill the
    process), they are ignored: the exit status stays 0. SIGKILL still ends a stuck exit."""
    def again(signum: int, frame: Any) -> None:
        print(f"[{node.get_name()}] {signal.Signals(signum).name} while shutting down: already shutting down",
              file=sys.stderr, flush=True)

    uninstall_signal_handlers()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, again)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
