"""The lifecycle base of both nodes and their `main`.

A ManagedNode declares its parameters from its params.NodeSpec, owns a Diagnostics, and
turns a failing transition (no bundle, bad parameter) into one error line and a FAILURE
return instead of a traceback. `run()` starts it as a plain node (autostart: configure +
activate) or leaves it unconfigured for a lifecycle manager.
"""
from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, ClassVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from mtl_split_core.errors import MtlSplitError

from .diagnostics import Diagnostics
from .params import NodeSpec, Param

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


INTERNAL = "internal"  # error kind of a message that hit a bug: counted, logged, node keeps serving


def contained(callback: Callable[..., None]) -> Callable[..., None]:
    """A message callback whose unexpected exception (a bug, or input nobody foresaw) drops
    that one message - counted as dropped and errors.internal, logged with its traceback
    (rate-limited) - instead of ending the node: one poisoned frame must not take the robot's
    perception down with it."""
    @functools.wraps(callback)
    def wrapper(self: "ManagedNode", *args: Any) -> None:
        try:
            callback(self, *args)
        except Exception as e:  # noqa: BLE001 - counted and logged, never silent
            self.diag.error(self.get_name(), INTERNAL, f"message dropped, unexpected {type(e).__name__}: {e}; "
                            f"please report this:\n{traceback.format_exc()}")
            self.diag.drop(INTERNAL)
    return wrapper


def _declare(node: LifecycleNode, p: Param) -> None:
    extra = f" One of: {', '.join(repr(c) for c in p.choices)}." if p.choices else ""
    descriptor = ParameterDescriptor(name=p.name, description=p.description + extra)
    if p.type == "double":
        # Doubles accept integers too (`-p max_wait_ms:=5`); get() converts.
        descriptor.dynamic_typing = True
        node.declare_parameter(p.name, float(p.default), descriptor)
    elif p.default == []:
        # rclpy would infer an empty list as a byte array: declare the type, no value.
        node.declare_parameter(p.name, _TYPES[p.type], descriptor)
    else:
        node.declare_parameter(p.name, list(p.default) if isinstance(p.default, list) else p.default, descriptor)


class ManagedNode(LifecycleNode):
    spec: ClassVar[NodeSpec]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.spec.name, **kwargs)
        for p in self.spec.params:
            _declare(self, p)
        unknown = [n for n in getattr(self, "_parameter_overrides", {})
                   if n not in self.spec.names and not n.startswith(_BUILTIN_PREFIXES)]
        if unknown:
            self.get_logger().warning(
                f"ignoring unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"{self.spec.name} knows: {', '.join(self.spec.names)}")
        self.diag = Diagnostics(self, self.get("diagnostics_period_s"))

    def get(self, name: str) -> Any:
        """A parameter's value, checked against its spec (type, choices)."""
        p = self.spec.param(name)
        try:
            value = self.get_parameter(name).value
        except ParameterUninitializedException:
            value = p.default
        if p.type == "double":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"parameter {name} must be a number, got {value!r}")
            value = float(value)
        elif p.type == "string_array":
            value = list(value)
        if p.choices and value not in p.choices:
            raise ValueError(f"parameter {name}={value!r} is not one of {', '.join(map(repr, p.choices))}")
        return value

    def params(self) -> dict[str, Any]:
        return {n: self.get(n) for n in self.spec.names}

    def configure_params(self) -> dict[str, Any]:
        """params() as configure needs them: both nodes are nothing without a bundle."""
        p = self.params()
        if not p["bundle"]:
            raise ValueError("parameter bundle is not set; start with -p bundle:=/path/to/bundle")
        return p

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.on_deactivate(state)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Undo configure (publishers, timers, the model); both cleanup and shutdown call it."""


def run(node_cls: type[ManagedNode], args: list[str] | None = None) -> int:
    """Spin one node until Ctrl-C/SIGTERM. Exit status 1 if autostart fails to configure."""
    rclpy.init(args=sys.argv if args is None else args)
    node = node_cls()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get("autostart"):
            ok = TransitionCallbackReturn.SUCCESS
            if node.trigger_configure() != ok or node.trigger_activate() != ok:
                node.get_logger().fatal("autostart failed (see the error above); exiting")
                return 1
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
