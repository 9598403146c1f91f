"""A capture stand-in for the part of ROS 2 ``launch`` / ``launch_ros`` that ``launch/*.launch.py`` use.

Why: launch and launch_ros are not installable from the package registries (ros2-notes §2.2), yet the launch files
must be real ROS 2 launch files. Tests put these modules in ``sys.modules`` only when launch_ros is absent; every
class records what it was constructed with ("capture on construction", as play_launch does), with the real
signatures (keyword-only where the real API is), so a launch file that would fail under ROS fails here too.
``WHITELIST`` is exactly what this stand-in provides; ``test_launch_files.py`` fails on any launch import outside
it, so the stand-in cannot silently drift from what the files use.
"""
from __future__ import annotations

import types
from typing import Any


class Captured:
    """Base of every stand-in entity: its constructor arguments, for assertions."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kwargs})"


class LaunchDescription(Captured):
    def __init__(self, initial_entities: list | None = None, *, deprecated_reason: str | None = None) -> None:
        super().__init__(deprecated_reason=deprecated_reason)
        self.entities = list(initial_entities or [])


class DeclareLaunchArgument(Captured):
    def __init__(self, name: str, *, default_value: Any = None, description: str | None = None,
                 choices: list[str] | None = None) -> None:
        super().__init__(name=name, default_value=default_value, description=description, choices=choices)
        self.name = name


class SetEnvironmentVariable(Captured):
    def __init__(self, name: Any, value: Any) -> None:
        super().__init__(name=name, value=value)


class Shutdown(Captured):
    def __init__(self, *, reason: str = "reason not given") -> None:
        super().__init__(reason=reason)


class LaunchConfiguration(Captured):
    def __init__(self, variable_name: str, *, default: Any = None) -> None:
        super().__init__(variable_name=variable_name, default=default)
        self.variable_name = variable_name


class Node(Captured):
    def __init__(self, *, executable: str, package: str | None = None, name: str | None = None,
                 namespace: str | None = None, exec_name: str | None = None, parameters: list | None = None,
                 remappings: list | None = None, ros_arguments: list | None = None, arguments: list | None = None,
                 output: str = "log", on_exit: Any = None, **process_kwargs: Any) -> None:
        super().__init__(executable=executable, package=package, name=name, namespace=namespace,
                         exec_name=exec_name, parameters=parameters, remappings=remappings,
                         ros_arguments=ros_arguments, arguments=arguments, output=output, on_exit=on_exit,
                         **process_kwargs)


class LifecycleNode(Node):
    def __init__(self, *, name: str, namespace: str, autostart: bool = False, **kwargs: Any) -> None:
        super().__init__(name=name, namespace=namespace, **kwargs)
        self.kwargs["autostart"] = autostart


# module -> names it provides; the launch files may import exactly these
WHITELIST: dict[str, tuple[str, ...]] = {
    "launch": ("LaunchDescription",),
    "launch.actions": ("DeclareLaunchArgument", "SetEnvironmentVariable", "Shutdown"),
    "launch.substitutions": ("LaunchConfiguration",),
    "launch_ros": (),
    "launch_ros.actions": ("Node", "LifecycleNode"),
}


def modules() -> dict[str, types.ModuleType]:
    """Fresh ``launch``, ``launch.actions``, ... module objects holding the whitelisted stand-in classes."""
    made = {}
    for module_name, names in WHITELIST.items():
        module = types.ModuleType(module_name, f"stand-in for ROS 2 {module_name} (tests/launch/launch_standin.py)")
        for name in names:
            setattr(module, name, globals()[name])
        made[module_name] = module
    for module_name, module in made.items():  # `import launch.actions` also needs the attribute on `launch`
        parent, _, child = module_name.rpartition(".")
        if parent:
            setattr(made[parent], child, module)
    return made
