"""HTTP serving: `create_app(chat) -> FastAPI` (OpenAI chat completions, VisualGLM api.py, captions)."""

from mm.serve.app import create_app
from mm.serve.requests import Limits

__all__ = ["Limits", "create_app"]
