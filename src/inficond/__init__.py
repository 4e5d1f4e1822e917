"""InFiConD: concept-based distillation of a vision teacher into sparse, tunable linear students.

``launch_app(workspace_or_session)`` serves the web app from Python or Jupyter; the engine is
``inficond.session.Session`` and workspaces are built by ``inficond.prepare.prepare``.
"""

from importlib import import_module

__all__ = ["App", "launch_app"]


def __getattr__(name: str):
    # Loaded on first use (PEP 562): every `inficond` command imports this package, and only
    # launch_app needs the launcher's modules (sockets, threads, a browser).
    if name in __all__:
        return getattr(import_module("inficond.launch"), name)
    raise AttributeError(f"module 'inficond' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
