"""Launch the Gradio app (chat with image / audio / microphone, captions) on http://127.0.0.1:7860.

Examples:
  mm demo
  mm demo --model runs/tiny/model --port 8080
"""

from __future__ import annotations


def main(argv: list[str]) -> int:
    from demos.app import main as app_main

    return app_main(argv)
