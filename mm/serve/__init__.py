"""HTTP serving: `create_app(chat) -> FastAPI` (OpenAI chat completions, VisualGLM api.py, captions)."""

from mm.serve.app import create_app
from mm.serve.requests import ServerLimits

Limits = ServerLimits  # the name this class had before the shared `mm.limits.Limits` existed

__all__ = ["Limits", "ServerLimits", "create_app"]
