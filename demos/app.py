"""The Gradio app: multimodal chat (image, audio, microphone), streaming, history, sliders, examples,
and a captioning tab. `build_app(model) -> gr.Blocks`; `main()` parses arguments and launches it.

No model logic lives here: every answer comes from `MMChat.stream_chat` / `MMChat.caption`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from mm.chat import infer_modality
from mm.errors import InputError

ASSETS = Path(__file__).parent / "assets"
# Questions the shipped mm-tiny answers correctly (its image answers beyond counting are not yet reliable:
# see the evaluation table in the README).
EXAMPLES = [
    [str(ASSETS / "three_shapes.png"), None, "How many shapes are there?"],
    [str(ASSETS / "shapes_digit.png"), None, "图中有几个形状？"],
    [None, str(ASSETS / "three_beeps.wav"), "How many beeps are there?"],
    [None, str(ASSETS / "three_beeps.wav"), "音调是低、中还是高？"],
    [None, str(ASSETS / "rising_sweep.wav"), "Is the sweep rising or falling?"],
]
CSS = "#chatbot {min-height: 420px}"


def _user_message(query: str, image: str | None, audio: str | None, first: bool) -> dict[str, Any]:
    content: list[Any] = []
    if first:  # the media belong to the conversation: show them with its first question
        content += [{"path": p} for p in (image, audio) if p]
    content.append(query)
    return {"role": "user", "content": content}


def build_app(model: Any, title: str = "mm: ask about pictures and sounds") -> gr.Blocks:
    def respond(query: str, image: str | None, audio: str | None, chat: list, history: list,
                max_new_tokens: int, temperature: float, top_p: float):
        query = (query or "").strip()
        if not query:
            gr.Warning("Type a question first.")
            yield chat, history, query
            return
        chat = [*chat, _user_message(query, image, audio, not history),
                {"role": "assistant", "content": ""}]
        yield chat, history, ""
        try:
            answer = ""
            for answer, _ in model.stream_chat(query, image=image, audio=audio, history=history,
                                                max_new_tokens=int(max_new_tokens), temperature=float(temperature),
                                                top_p=float(top_p)):
                chat[-1] = {"role": "assistant", "content": answer}
                yield chat, history, ""
        except InputError as e:  # a bad file is a readable message in the chat, never a traceback
            chat[-1] = {"role": "assistant", "content": f"⚠️ {e}"}
            yield chat, history, query
            return
        yield chat, [*history, (query, answer)], ""

    def undo(chat: list, history: list):
        if not history:
            return chat, history
        # Drop the last exchange: its user message (with any media shown) and the answer.
        last_user = max(i for i, m in enumerate(chat) if m["role"] == "user")
        return chat[:last_user], history[:-1]

    def retry(image, audio, chat, history, max_new_tokens, temperature, top_p):
        if not history:
            yield chat, history, ""
            return
        query = history[-1][0]
        chat, history = undo(chat, history)
        yield from respond(query, image, audio, chat, history, max_new_tokens, temperature, top_p)

    def caption_files(files: list | None, lang: str, max_new_tokens: int):
        if not files:
            raise gr.Error("Upload one or more images or sound files first.")
        rows, records = [], []
        for f in files:
            path = f if isinstance(f, str) else f.name
            name = Path(path).name
            try:
                text = model.caption([path], lang=lang, max_new_tokens=int(max_new_tokens))[0]
                error = ""
            except InputError as e:  # one bad file does not sink the others
                text, error = "", str(e).replace(path, name)
            try:
                modality = infer_modality(path)
            except InputError:
                modality = "?"
            rows.append([name, modality, text, error])
            records.append({"path": name, "modality": modality, "caption": text, "error": error or None})
        out = Path(tempfile.mkdtemp()) / "captions.jsonl"
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        return rows, str(out)

    with gr.Blocks(title=title) as app:
        gr.Markdown(f"# {title}\nUpload a picture or a sound (or record one), then ask about it. "
                    "A new upload starts a new conversation.")
        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=2):
                    image = gr.Image(type="filepath", label="Image", height=240, elem_id="image-input")
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
                    with gr.Accordion("Generation", open=False):
                        max_len = gr.Slider(1, 1024, value=128, step=1, label="Maximum length (new tokens)")
                        temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label="Temperature (0 = greedy)")
                        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top P")
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(elem_id="chatbot", label="Conversation", height=420)
                    query = gr.Textbox(placeholder="Ask about the picture or the sound… (中文也可以)", label="Question",
                                       lines=1, elem_id="query")
                    with gr.Row():
                        send = gr.Button("Send", variant="primary", elem_id="send")
                        retry_btn = gr.Button("Retry")
                        undo_btn = gr.Button("Undo")
                        clear = gr.Button("Clear")
            gr.Examples(EXAMPLES, inputs=[image, audio, query], label="Examples from the synthetic world")
        with gr.Tab("Captions"):
            files = gr.File(file_count="multiple", label="Images and sounds", file_types=["image", "audio"])
            with gr.Row():
                lang = gr.Radio(["en", "zh"], value="en", label="Language")
                cap_len = gr.Slider(1, 256, value=64, step=1, label="Maximum length")
            go = gr.Button("Caption", variant="primary")
            table = gr.Dataframe(headers=["file", "modality", "caption", "error"], label="Captions", wrap=True)
            download = gr.File(label="captions.jsonl")

        history = gr.State([])
        gen = [max_len, temperature, top_p]
        send.click(respond, [query, image, audio, chatbot, history, *gen], [chatbot, history, query],
                   api_name="chat")
        query.submit(respond, [query, image, audio, chatbot, history, *gen], [chatbot, history, query],
                     api_name=False)
        retry_btn.click(retry, [image, audio, chatbot, history, *gen], [chatbot, history, query], api_name=False)
        undo_btn.click(undo, [chatbot, history], [chatbot, history], api_name=False)
        for trigger in (clear.click, image.change, audio.change):
            trigger(lambda: ([], []), None, [chatbot, history], api_name=False)
        go.click(caption_files, [files, lang, cap_len], [table, download], api_name="caption")
    # One model, one generation at a time; every browser session keeps its own history (gr.State).
    app.queue(default_concurrency_limit=1, max_size=32)
    return app


def main(argv: list[str] | None = None) -> int:
    import mm

    p = argparse.ArgumentParser(prog="mm demo", description="Launch the Gradio app.")
    p.add_argument("--model", default="mm-tiny", help="preset name or saved model directory")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    args = p.parse_args(argv)
    app = build_app(mm.load(args.model, device=args.device, dtype=args.dtype))
    app.launch(server_name=args.host, server_port=args.port, css=CSS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
