"""The InFiConD web app: a FastAPI server over one workspace and its built front end."""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
