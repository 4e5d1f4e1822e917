"""InFiConD: concept-based distillation of a vision teacher into sparse, tunable linear students.

``launch_app(workspace_or_session)`` serves the web app from Python or Jupyter; the engine is
``inficond.session.Session`` and workspaces are built by ``inficond.prepare.prepare``.
"""

from inficond.launch import App, launch_app

__all__ = ["App", "launch_app"]
