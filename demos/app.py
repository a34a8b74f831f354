"""The Gradio app: multimodal chat (image, audio, microphone, video), streaming, history, sliders,
examples, a captioning tab and a clip comparison tab. `build_app(model) -> gr.Blocks`; `main()` parses
arguments and launches it.

No model logic lives here: every answer comes from `MMChat.stream_chat`, `mm.captioning.caption_items`
and `mm.compare_clips`. Uploads reach that code as files, undecoded, so a file it cannot read (or one past
the model's `limits`) becomes a chat message saying what is wrong, and one warning line in the log.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from mm.captioning import caption_items
from mm.cli.common import recent_history
from mm.errors import InputError

if TYPE_CHECKING:
    from mm.chat import MMChat

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets"
# Questions the shipped mm-tiny answers correctly (not every image or clip question is reliable yet:
# see the evaluation table in the README); tests/serve/test_gradio.py holds them to tests/golden.py.
EXAMPLES = [
    [str(ASSETS / "red_circle.png"), None, None, "What colour is the circle?"],
    [str(ASSETS / "red_circle.png"), None, None, "What shape is it?"],
    [str(ASSETS / "red_circle.png"), None, None, "Where is the circle?"],
    [str(ASSETS / "shapes_digit.png"), None, None, "Is the star yellow?"],
    [str(ASSETS / "three_shapes.png"), None, None, "How many shapes are there?"],
    [str(ASSETS / "shapes_digit.png"), None, None, "图中有几个形状？"],
    [None, str(ASSETS / "three_beeps.wav"), None, "音调是低、中还是高？"],
    [None, str(ASSETS / "rising_sweep.wav"), None, "Is the sweep rising or falling?"],
    [None, None, str(ASSETS / "red_circle_left_fast.mp4"), "Which way does the circle move?"],
    [None, None, str(ASSETS / "red_circle_left_fast.mp4"), "When does the beep sound?"],
]
CSS = "#chatbot {min-height: 420px}"


def undecoded(image: gr.Image) -> gr.Image:
    """`image`, made to pass the uploaded file's path on without opening it.

    `gr.Image` opens every upload with PIL before the event handler runs, so an empty file, a sound named
    .png or a decompression bomb failed inside Gradio (a generic error for the user, a traceback in the
    log). Undecoded, the file goes to `MMChat`, whose image loader checks it against the model's limits
    and says what is wrong. (Set on the instance: a `gr.Image` subclass would make Gradio write a .pyi
    stub beside this file at import.)
    """
    decode = image.preprocess

    def preprocess(payload):
        if payload is None or payload.path is None:  # a pasted data: URL has no file; Gradio decodes it
            return decode(payload)
        return str(payload.path)

    image.preprocess = preprocess
    return image


def _user_message(query: str, image: str | None, audio: str | None, video: str | None, first: bool) -> dict[str, Any]:
    content: list[Any] = []
    if first:  # the media belong to the conversation: show them with its first question
        content += [{"path": p} for p in (image, audio, video) if p]
    content.append(query)
    return {"role": "user", "content": content}


def _user_text(message: str, paths: tuple[str | None, ...]) -> str:
    """An error message with Gradio's temporary upload paths shortened to the names the user uploaded."""
    for path in paths:
        if path:
            message = message.replace(path, Path(path).name)
    return message


def build_app(model: MMChat, title: str = "mm: ask about pictures, sounds and clips") -> gr.Blocks:
    takes_video = "video" in model.config.modalities

    def respond(query: str, image: str | None, audio: str | None, video: str | None, chat: list, history: list,
                max_new_tokens: int, temperature: float, top_p: float):
        query = (query or "").strip()
        if not query:
            gr.Warning("Type a question first.")
            yield chat, history, query
            return
        chat = [*chat, _user_message(query, image, audio, video, not history),
                {"role": "assistant", "content": ""}]
        yield chat, history, ""
        try:
            answer = ""
            for answer, _ in model.stream_chat(query, image=image, audio=audio, video=video,
                                                history=recent_history(history, model.limits),
                                                max_new_tokens=int(max_new_tokens), temperature=float(temperature),
                                                top_p=float(top_p)):
                chat[-1] = {"role": "assistant", "content": answer}
                yield chat, history, ""
        except InputError as e:  # a bad file is a readable message in the chat, never a traceback
            message = _user_text(str(e), (image, audio, video))
            logger.warning("chat: %s", message)
            chat[-1] = {"role": "assistant", "content": f"⚠️ {message}"}
            yield chat, history, query
            return
        yield chat, [*history, (query, answer)], ""

    def undo(chat: list, history: list):
        if not history:
            return chat, history
        # Drop the last exchange: its user message (with any media shown) and the answer.
        last_user = max(i for i, m in enumerate(chat) if m["role"] == "user")
        return chat[:last_user], history[:-1]

    def retry(image, audio, video, chat, history, max_new_tokens, temperature, top_p):
        if not history:
            yield chat, history, ""
            return
        query = history[-1][0]
        chat, history = undo(chat, history)
        yield from respond(query, image, audio, video, chat, history, max_new_tokens, temperature, top_p)

    def caption_files(files: list | None, lang: str, max_new_tokens: int):
        if not files:
            raise gr.Error("Upload one or more images, sounds or clips first.")
        paths = [f if isinstance(f, str) else f.name for f in files]
        names = [Path(p).name for p in paths]
        # Batched; a bad file gets an error row and does not sink the others.
        results = caption_items(model, paths, names=names, lang=lang, on_error="skip",
                                max_new_tokens=int(max_new_tokens))
        rows, records = [], []
        for path, r in zip(paths, results):
            error = (r.error or "").replace(path, r.path)
            rows.append([r.path, r.modality or "?", r.caption or "", error])
            records.append({"path": r.path, "modality": r.modality, "caption": r.caption, "error": error or None})
        out = Path(tempfile.mkdtemp()) / "captions.jsonl"
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        return rows, str(out)

    def compare(a: str | None, b: str | None, segment: float, describe: bool):
        from mm.compare import compare_clips
        from mm.compare_report import save_report

        if not a or not b:
            raise gr.Error("Upload two clips first.")
        try:
            result = compare_clips(a, b, model=model, segment_seconds=float(segment), describe=bool(describe))
        except InputError as e:
            raise gr.Error(str(e).replace(a, "clip A").replace(b, "clip B")) from None
        out = Path(tempfile.mkdtemp())
        page = save_report(result, out)
        audio = "n/a" if result.audio_score is None else f"{result.audio_score:.3f}"
        summary = f"**Visual score** {result.visual_score:.3f} · **audio score** {audio} · " \
                  f"{len(result.segments_a)} × {len(result.segments_b)} segments"
        texts = ""
        if result.descriptions:
            texts = (f"A: {result.descriptions['a']}\nB: {result.descriptions['b']}\n"
                     f"Difference: {result.difference}")
        return summary, texts, str(out / "heatmap.png"), str(out / "timeline.png"), str(page)

    with gr.Blocks(title=title) as app:
        gr.Markdown(f"# {title}\nUpload a picture or a sound (or record one), then ask about it. "
                    "A new upload starts a new conversation.")
        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=2):
                    image = undecoded(gr.Image(type="filepath", label="Image", height=240, elem_id="image-input"))
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
                    video = gr.Video(sources=["upload"], label="Video", height=200, visible=takes_video,
                                     elem_id="video-input")
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
            gr.Examples(EXAMPLES, inputs=[image, audio, video, query], label="Examples from the synthetic world")
        with gr.Tab("Captions"):
            files = gr.File(file_count="multiple", label="Images, sounds and clips",
                            file_types=["image", "audio", "video"])
            with gr.Row():
                lang = gr.Radio(["en", "zh"], value="en", label="Language")
                cap_len = gr.Slider(1, 256, value=64, step=1, label="Maximum length")
            go = gr.Button("Caption", variant="primary")
            table = gr.Dataframe(headers=["file", "modality", "caption", "error"], label="Captions", wrap=True)
            download = gr.File(label="captions.jsonl")
        with gr.Tab("Compare clips", visible=takes_video):
            with gr.Row():
                clip_a = gr.Video(sources=["upload"], label="Clip A", height=220)
                clip_b = gr.Video(sources=["upload"], label="Clip B", height=220)
            with gr.Row():
                segment = gr.Slider(0.5, 10, value=2.0, step=0.5, label="Segment length (s)")
                describe = gr.Checkbox(value=True, label="Ask the model to describe the clips and the difference")
            run_compare = gr.Button("Compare", variant="primary")
            scores = gr.Markdown()
            words = gr.Textbox(label="What the model says", lines=3)
            with gr.Row():
                heat = gr.Image(label="Similarity and alignment", type="filepath")
                line = gr.Image(label="Similarity over time", type="filepath")
            report = gr.File(label="report.html")

        history = gr.State([])
        gen = [max_len, temperature, top_p]
        media = [image, audio, video]
        send.click(respond, [query, *media, chatbot, history, *gen], [chatbot, history, query], api_name="chat")
        query.submit(respond, [query, *media, chatbot, history, *gen], [chatbot, history, query], api_name=False)
        retry_btn.click(retry, [*media, chatbot, history, *gen], [chatbot, history, query], api_name=False)
        undo_btn.click(undo, [chatbot, history], [chatbot, history], api_name=False)
        for trigger in (clear.click, image.change, audio.change, video.change):
            trigger(lambda: ([], []), None, [chatbot, history], api_name=False)
        go.click(caption_files, [files, lang, cap_len], [table, download], api_name="caption")
        run_compare.click(compare, [clip_a, clip_b, segment, describe], [scores, words, heat, line, report],
                          api_name="compare")
    # One model, one generation at a time; every browser session keeps its own history (gr.State).
    app.queue(default_concurrency_limit=1, max_size=32)
    return app


def main(argv: list[str] | None = None) -> int:
    from mm.cli.common import add_limit_args, add_model_args, load_model, parser, port_number

    p = parser("demo", "Launch the Gradio app.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=7860)
    add_model_args(p)  # --model, --checkpoint, --quant, ... as on every command
    add_limit_args(p)  # --max-file-mb, --max-image-pixels, ...: the model applies them to every upload
    args = p.parse_args(argv)
    model = load_model(args)
    app = build_app(model)
    # Gradio refuses bigger uploads itself, before they are written to disk.
    app.launch(server_name=args.host, server_port=args.port, css=CSS, max_file_size=model.limits.max_file_bytes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
