"""Compare two video clips: per-segment similarity, alignment, scores, and the model's descriptions.

Writes OUT/report.json, OUT/heatmap.png (similarity with the alignment path), OUT/timeline.png and a
self-contained OUT/report.html with both clips' key frames side by side. With --pairs, every row of a
CSV (columns a,b and optionally name; paths relative to the CSV) gets OUT/NAME/ and OUT/summary.csv /
summary.html list them all.

Examples:
  mm compare fast_car.mp4 slow_car.mp4 --out report/
  mm compare a.mkv b.mkv --out report/ --cuts            # segments between scene cuts
  mm compare --pairs pairs.csv --out reports/ --no-describe
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

from mm.cli.common import add_limit_args, add_model_args, fraction, load_model, parser, positive_float


def _pairs(path: Path) -> list[dict[str, str]]:
    from mm.errors import InputError

    if not path.is_file():
        raise InputError(f"{path}: no such pairs file")
    try:  # utf-8-sig: spreadsheets often save a byte-order mark before the header
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                         "save the pairs CSV as UTF-8") from None
    except csv.Error as e:
        raise InputError(f"{path}: not a readable CSV ({e})") from None
    if not rows or not {"a", "b"} <= set(rows[0]):
        raise InputError(f"{path}: a pairs CSV needs a header with columns a,b (and optionally name)")
    out = []
    for k, r in enumerate(rows, 1):
        if not r.get("a") or not r.get("b"):
            raise InputError(f"{path}: row {k} needs both a and b")
        a, b = (Path(r[c]) if Path(r[c]).is_absolute() else path.parent / r[c] for c in ("a", "b"))
        name = r.get("name") or f"{k:04d}-{a.stem}-vs-{b.stem}"
        out.append({"name": re.sub(r"[^\w.-]+", "_", name), "a": str(a), "b": str(b)})
    return out


def main(argv: list[str]) -> int:
    from mm.compare import compare_clips
    from mm.compare_report import save_report, save_summary
    from mm.errors import InputError

    p = parser("compare", __doc__)
    p.add_argument("clips", nargs="*", help="two clips A B (or none with --pairs)")
    p.add_argument("--pairs", default=None, help="CSV of pairs to compare (columns a,b[,name])")
    p.add_argument("--out", required=True, help="output directory (created; reports in it are replaced)")
    p.add_argument("--segment", type=positive_float, default=2.0, help="segment length in seconds (default 2)")
    p.add_argument("--cuts", action="store_true", help="segment at scene cuts instead of fixed windows")
    p.add_argument("--cut-threshold", type=fraction, default=0.25, help="grey-level change that counts as a cut (0-1)")
    p.add_argument("--no-describe", action="store_true", help="skip the model's descriptions (faster)")
    p.add_argument("--lang", choices=["en", "zh"], default="en")
    p.add_argument("--json", action="store_true", help="print the result (or the summary) as JSON")
    add_model_args(p)
    add_limit_args(p)
    args = p.parse_args(argv)
    if bool(args.pairs) == bool(args.clips) or (args.clips and len(args.clips) != 2):
        p.error("give two clips A B, or --pairs FILE")
    out = Path(args.out)
    if out.exists() and not out.is_dir():  # never replace a file the user named by mistake
        raise InputError(f"{out}: exists and is not a directory; --out names the folder the report goes in")
    jobs = _pairs(Path(args.pairs)) if args.pairs else [{"name": "", "a": args.clips[0], "b": args.clips[1]}]
    for j in jobs:
        for c in (j["a"], j["b"]):
            if not Path(c).is_file():
                raise InputError(f"{c}: no such clip")
    chat = load_model(args)
    kw = {"segment_seconds": args.segment, "cuts": args.cuts, "cut_threshold": args.cut_threshold,
          "describe": not args.no_describe, "lang": args.lang}
    rows = []
    for j in jobs:
        try:
            result = compare_clips(j["a"], j["b"], model=chat, **kw)
        except InputError as e:
            if not args.pairs:
                raise
            print(f"mm compare: {j['name']}: {e}", file=sys.stderr)
            rows.append({**j, "error": str(e)})
            continue
        page = save_report(result, out / j["name"])
        rows.append({**j, "visual_score": result.visual_score, "audio_score": result.audio_score,
                     "difference": result.difference, "report": str(page)})
        if not args.pairs:
            if args.json:
                print(json.dumps(result.to_dict(), ensure_ascii=False))
            else:
                audio = "n/a" if result.audio_score is None else f"{result.audio_score:.3f}"
                print(f"visual score {result.visual_score:.3f}, audio score {audio}")
                if result.difference:
                    print(f"A: {result.descriptions['a']}\nB: {result.descriptions['b']}\ndifference: {result.difference}")
                print(f"report: {page}")
    if args.pairs:
        csv_path, html_path = save_summary(rows, out)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        else:
            width = max(len(r["name"]) for r in rows)
            for r in rows:
                score = f"{r['visual_score']:.3f}" if "visual_score" in r else "error"
                print(f"{r['name'].ljust(width)}  visual {score}  {r.get('difference') or r.get('error', '')}")
            print(f"summary: {csv_path}, {html_path}")
        return 1 if all("error" in r for r in rows) else 0
    return 0
