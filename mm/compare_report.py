"""Writing a `ClipComparison` to disk: report.json, heatmap.png, timeline.png and a self-contained report.html.

The HTML embeds the plots and each segment's key frame as base64 data, so the one file can be mailed or
attached to an issue. Many pairs (`mm compare --pairs`) get one directory each plus summary.csv/.html.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mm.compare import ClipComparison


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def heatmap_png(result: ClipComparison) -> bytes:
    """Similarity matrices (visual, and audio when present) with the alignment path drawn over them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("visual", result.visual)] + ([("audio", result.audio)] if result.audio is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (name, m) in zip(axes[0], panels):
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="viridis", origin="upper", aspect="auto")
        ys, xs = zip(*result.path)
        ax.plot(xs, ys, color="white", linewidth=1.5, marker="o", markersize=2)
        ax.set_title(f"{name} similarity (score {np.mean([m[i, j] for i, j in result.path]):.2f})")
        ax.set_xlabel("segment of B")
        ax.set_ylabel("segment of A")
        fig.colorbar(im, ax=ax, fraction=0.046)
    data = _png(fig)
    plt.close(fig)
    return data


def timeline_png(result: ClipComparison) -> bytes:
    """Similarity along the alignment path against the time of clip A; differing segments marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [(result.segments_a[i].start + result.segments_a[i].end) / 2 for i, _ in result.path]
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    ax.plot(t, [result.visual[i, j] for i, j in result.path], label="visual", marker="o")
    if result.audio is not None:
        ax.plot(t, [result.audio[i, j] for i, j in result.path], label="audio", marker="s")
    for d in result.differing:
        ax.axvspan(*d["a_time"], color="tab:red", alpha=0.12)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("time in A (s)")
    ax.set_ylabel("similarity")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    data = _png(fig)
    plt.close(fig)
    return data


def _img_tag(image: Image.Image, width: int = 120) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=85)
    return f'<img width="{width}" src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _png_tag(data: bytes, alt: str) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def report_html(result: ClipComparison, heatmap: bytes, timeline: bytes) -> str:
    e = html.escape
    rows = []
    for i, j in result.path:
        sa, sb = result.segments_a[i], result.segments_b[j]
        audio = "" if result.audio is None else f"{result.audio[i, j]:.2f}"
        rows.append(f"<tr><td>{sa.start:.1f}-{sa.end:.1f} s</td><td>{_img_tag(sa.key_frame)}</td>"
                    f"<td>{_img_tag(sb.key_frame)}</td><td>{sb.start:.1f}-{sb.end:.1f} s</td>"
                    f"<td>{result.visual[i, j]:.2f}</td><td>{audio}</td></tr>")
    audio_score = "n/a" if result.audio_score is None else f"{result.audio_score:.3f}"
    texts = ""
    if result.descriptions:
        texts = (f"<h2>What the model says</h2><table class=t><tr><th>A</th><td>{e(result.descriptions['a'])}</td></tr>"
                 f"<tr><th>B</th><td>{e(result.descriptions['b'])}</td></tr>"
                 f"<tr><th>difference</th><td>{e(result.difference)}</td></tr></table>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Clip comparison</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:center}} .t td{{text-align:left}}</style></head>
<body><h1>Clip comparison</h1>
<table class=t><tr><th>A</th><td>{e(result.a)}</td></tr><tr><th>B</th><td>{e(result.b)}</td></tr>
<tr><th>visual score</th><td>{result.visual_score:.3f}</td></tr><tr><th>audio score</th><td>{audio_score}</td></tr></table>
{texts}
<h2>Similarity and alignment</h2>{_png_tag(heatmap, "similarity heatmap")}<br>{_png_tag(timeline, "timeline")}
<h2>Aligned segments</h2>
<table><tr><th>A time</th><th>A</th><th>B</th><th>B time</th><th>visual</th><th>audio</th></tr>
{''.join(rows)}</table></body></html>
"""


def save_report(result: ClipComparison, out: str | Path) -> Path:
    """Write the report files under `out`; returns the report.html path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    heat, line = heatmap_png(result), timeline_png(result)
    (out / "heatmap.png").write_bytes(heat)
    (out / "timeline.png").write_bytes(line)
    page = out / "report.html"
    page.write_text(report_html(result, heat, line), encoding="utf-8")
    return page


SUMMARY_FIELDS = ["name", "a", "b", "visual_score", "audio_score", "difference", "error"]


def save_summary(rows: list[dict[str, Any]], out: str | Path) -> tuple[Path, Path]:
    """summary.csv and summary.html for many pairs (one row per pair; failed pairs carry `error`)."""
    out = Path(out)
    with (out / "summary.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    e = html.escape

    def cell(r: dict, k: str) -> str:
        v = r.get(k)
        return f"{v:.3f}" if isinstance(v, float) else e("" if v is None else str(v))

    body = "".join(
        "<tr>" + f'<td><a href="{e(r["name"])}/report.html">{e(r["name"])}</a></td>'
        + "".join(f"<td>{cell(r, k)}</td>" for k in SUMMARY_FIELDS[1:]) + "</tr>" for r in rows)
    head = "".join(f"<th>{k}</th>" for k in SUMMARY_FIELDS)
    (out / "summary.html").write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>Clip comparisons</title></head><body>'
        f"<h1>Clip comparisons</h1><table border=1><tr>{head}</tr>{body}</table></body></html>", encoding="utf-8")
    return out / "summary.csv", out / "summary.html"
