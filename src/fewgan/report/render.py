"""Markdown and self-contained HTML rendering. Every string that comes from data, params or paths is
escaped (html.escape) before it reaches either document."""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Sequence

import pandas as pd


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too: values also land in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, decimals: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value != 0 and abs(value) < 10 ** -decimals:
            return f"{value:.{decimals}e}"
        return f"{value:,.{decimals}f}"
    try:
        if pd.isna(value):
            return "n/a"
    except (TypeError, ValueError):
        pass
    return str(value)


def md_text(value: Any) -> str:
    # raw HTML in markdown is rendered by most viewers: escape <, > and & (markdown text is never inside an
    # HTML attribute, so quotes stay readable), and the table's own pipe separator
    return html.escape("" if value is None else str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame) -> str:
    """A markdown table with every cell and header escaped (pandas .to_markdown, i.e. tabulate)."""
    if df.empty:
        return "_(no rows)_"
    safe = pd.DataFrame([[md_text(v) for v in row] for row in df.itertuples(index=False)],
                        columns=[md_text(c) for c in df.columns])
    return safe.to_markdown(index=False, disable_numparse=True)


#: columns that name a row (short words): never broken inside a word, whatever else must wrap to fit
KEY_COLUMNS = ("rank", "model", "seed", "seeds", "dataset")


def html_table(df: pd.DataFrame, css_class: str = "") -> str:
    if df.empty:
        return "<p><em>(no rows)</em></p>"
    key = [' class="key"' if str(c) in KEY_COLUMNS else "" for c in df.columns]
    head = "".join(f"<th{k}>{esc(c)}</th>" for k, c in zip(key, df.columns))
    body = "".join("<tr>" + "".join(f"<td{k}>{esc(v)}</td>" for k, v in zip(key, row)) + "</tr>"
                   for row in df.itertuples(index=False))
    return f'<table class="{esc(css_class)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#222;line-height:1.4;overflow-wrap:break-word}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.86em;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f3}
table.kv th{width:22em;font-weight:normal;color:#444}
th.key,td.key{overflow-wrap:normal;white-space:nowrap}
.banner{background:#fff3cd;border:2px solid #d39e00;padding:0.7em 1em;margin:1em 0;font-weight:600}
.synthetic{background:#e7f1ff;border:1px solid #4a86e8;padding:0.5em 1em;margin:0.6em 0}
.na{color:#777;font-style:italic}
.paper{background:#f7f7f7;border-left:4px solid #999;padding:0.2em 1em}
section.dataset{border-top:3px solid #2a6f4e;margin-top:2em}
.verdict{background:#f1f8f4;border-left:4px solid #2a6f4e;padding:0.4em 1em;margin:0.6em 0}
.verdict .headline{font-weight:600;font-size:1.05em;margin:0.3em 0}
.same{color:#444;font-size:0.92em;margin:0.4em 0}
.same ul{margin:0.2em 0}
.note{font-size:0.9em;color:#444}
nav.toc{font-size:0.92em}
details{margin:0.5em 0}
summary{cursor:pointer;font-weight:600}
figure{margin:1em 0}
.figs{display:flex;flex-wrap:wrap;gap:0 1.5em;align-items:flex-start}
.figs figure{flex:1 1 480px;max-width:100%;margin:0.6em 0}
.figs figure.wide{flex-basis:100%}
img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:0.9em;color:#444}
.fe{color:#a00;font-weight:600}
"""


def html_document(title: str, sections: Iterable[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>{esc(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")


def html_list(items: Sequence[str], css_class: str = "") -> str:
    if not items:
        return "<p><em>none</em></p>"
    return f'<ul class="{esc(css_class)}">' + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def md_list(items: Sequence[str]) -> str:
    if not items:
        return "_none_"
    return "\n".join(f"- {md_text(i)}" for i in items)


def html_img(rel_path: str, alt: str, css_class: str = "") -> str:
    return (f'<figure{_cls(css_class)}><img src="{esc(rel_path)}" alt="{esc(alt)}">'
            f"<figcaption>{esc(alt)}</figcaption></figure>")


def md_img(rel_path: str, alt: str) -> str:
    safe_alt = md_text(alt).replace("[", "(").replace("]", ")")
    return f"![{safe_alt}]({rel_path})"


# ---- the report as blocks: one list, rendered to both documents ----------------------------------------------
# A block is a tuple whose first item names its kind:
#   ("h", level, text, anchor)         heading (anchor: the HTML id, or None)
#   ("p", text, css_class)             paragraph
#   ("list", items, css_class)         bulleted list
#   ("table", DataFrame, css_class)    table, every cell escaped
#   ("kv", [(key, value)], css_class)  key / value table (provenance)
#   ("same", [(header, value)])        what is the same for every row of the table that follows, said once
#   ("img", rel_path, caption, class)  figure with alt text and caption
#   ("links", prefix, [(rel, label)])  a sentence of links to files of the report
#   ("details", summary, [blocks])     collapsible section (HTML <details>, also in the README)
#   ("div", css_class, anchor, [blocks], tag)  a group (HTML only: <div>/<section>; Markdown: its blocks)
#   ("linklist", [(rel, label)])       bulleted list of links to files of the report
#   ("raw", html, markdown)            prebuilt, already escaped text (the banner); markdown None: HTML only

def h(level: int, text: str, anchor: str | None = None) -> tuple:
    return ("h", level, text, anchor)


def p(text: str, css_class: str = "") -> tuple:
    return ("p", text, css_class)


def ul(items: Sequence[str], css_class: str = "") -> tuple:
    return ("list", list(items), css_class)


def table(df: pd.DataFrame, css_class: str = "") -> tuple:
    return ("table", df, css_class)


def kv(rows: Sequence[tuple[Any, Any]], css_class: str = "kv") -> tuple:
    return ("kv", list(rows), css_class)


def same(items: Sequence[tuple[str, str]]) -> tuple:
    return ("same", list(items))


def img(rel_path: str, caption: str, css_class: str = "") -> tuple:
    return ("img", rel_path, caption, css_class)


def links(prefix: str, items: Sequence[tuple[str, str]]) -> tuple:
    return ("links", prefix, list(items))


def linklist(items: Sequence[tuple[str, str]]) -> tuple:
    return ("linklist", list(items))


def gallery(figures: Sequence[tuple[str, str]], wide: Iterable[str] = ()) -> tuple:
    """Figures side by side where the page is wide enough; those named in `wide` (a panel per model) take a
    row of their own."""
    wide = set(wide)
    return ("div", "figs", None, [img(rel, cap, "wide" if rel in wide else "") for rel, cap in figures], "div")


def details(summary: str, blocks: Sequence[tuple]) -> tuple:
    return ("details", summary, list(blocks))


def div(css_class: str, blocks: Sequence[tuple], anchor: str | None = None, tag: str = "div") -> tuple:
    return ("div", css_class, anchor, list(blocks), tag)


SAME_LEAD = "Same for every row:"


def _after(header: str, value: str) -> str:
    """A value that repeats its header ("feature extractor: untrained, ...") without the repetition."""
    return value[len(header) + 1:].lstrip() if value.lower().startswith(header.lower() + ":") else value


def _cls(css_class: str) -> str:
    return f' class="{esc(css_class)}"' if css_class else ""


def _id(anchor: str | None) -> str:
    return f' id="{esc(anchor)}"' if anchor else ""


def to_html(blocks: Iterable[tuple]) -> list[str]:
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}{_id(b[3])}>{esc(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p{_cls(b[2])}>{esc(b[1])}</p>")
        elif kind == "list":
            out.append(html_list(b[1], b[2]))
        elif kind == "table":
            out.append(html_table(b[1], b[2]))
        elif kind == "kv":
            rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in b[1])
            out.append(f'<table{_cls(b[2])}><tbody>{rows}</tbody></table>' if b[1] else "<p><em>(none)</em></p>")
        elif kind == "same":
            if b[1]:
                items = "".join(f"<li><strong>{esc(k)}</strong>: {esc(_after(k, v))}</li>" for k, v in b[1])
                out.append(f'<div class="same">{esc(SAME_LEAD)}<ul>{items}</ul></div>')
        elif kind == "img":
            out.append(html_img(b[1], b[2], b[3] if len(b) > 3 else ""))
        elif kind == "links":
            out.append(f"<p>{esc(b[1])} " + ", ".join(f'<a href="{esc(rel)}">{esc(label)}</a>' for rel, label in b[2])
                       + ".</p>")
        elif kind == "linklist":
            if b[1]:
                out.append("<ul>" + "".join(f'<li><a href="{esc(rel)}">{esc(label)}</a></li>' for rel, label in b[1])
                           + "</ul>")
        elif kind == "details":
            out.append(f"<details><summary>{esc(b[1])}</summary>\n" + "\n".join(to_html(b[2])) + "\n</details>")
        elif kind == "div":
            _, css_class, anchor, inner, tag = b
            out.append(f"<{tag}{_cls(css_class)}{_id(anchor)}>\n" + "\n".join(to_html(inner)) + f"\n</{tag}>")
        elif kind == "raw":
            out.append(b[1])
        else:
            raise ValueError(f"unknown report block {kind!r}")
    return out


def to_md(blocks: Iterable[tuple]) -> list[str]:
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out += [f"{'#' * b[1]} {md_text(b[2])}", ""]
        elif kind == "p":
            out += [md_text(b[1]), ""]
        elif kind == "list":
            out += [md_list(b[1]), ""]
        elif kind == "table":
            out += [md_table(b[1]), ""]
        elif kind == "kv":
            out += [md_table(pd.DataFrame(b[1], columns=["item", "value"])) if b[1] else "_(none)_", ""]
        elif kind == "same":
            if b[1]:
                out += [SAME_LEAD, "", md_list([f"{k}: {_after(k, v)}" for k, v in b[1]]), ""]
        elif kind == "img":
            out += [md_img(b[1], b[2]), ""]
        elif kind == "links":
            out += [md_text(b[1]) + " " + ", ".join(f"[{md_text(label)}]({rel})" for rel, label in b[2]) + ".", ""]
        elif kind == "linklist":
            if b[1]:
                out += ["\n".join(f"- [{md_text(label)}]({rel})" for rel, label in b[1]), ""]
        elif kind == "details":
            # GitHub and most viewers render <details> in Markdown; the blank lines let the tables inside render
            out += [f"<details><summary>{html.escape(str(b[1]), quote=False)}</summary>", ""] + to_md(b[2]) + \
                ["</details>", ""]
        elif kind == "div":
            out += to_md(b[3])
        elif kind == "raw":
            if b[2] is not None:
                out += [b[2], ""]
        else:
            raise ValueError(f"unknown report block {kind!r}")
    return out
