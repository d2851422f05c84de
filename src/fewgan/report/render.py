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


def html_table(df: pd.DataFrame, css_class: str = "") -> str:
    if df.empty:
        return "<p><em>(no rows)</em></p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f'<table class="{esc(css_class)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.86em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.banner{background:#fff3cd;border:2px solid #d39e00;padding:0.7em 1em;margin:1em 0;font-weight:600}
.synthetic{background:#e7f1ff;border:1px solid #4a86e8;padding:0.5em 1em;margin:0.6em 0}
.na{color:#777;font-style:italic}
.paper{background:#f7f7f7;border-left:4px solid #999;padding:0.2em 1em}
img{max-width:100%;border:1px solid #ddd}
.fe{color:#a00;font-weight:600}
"""


def html_document(title: str, sections: Iterable[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
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


def html_img(rel_path: str, alt: str) -> str:
    return f'<figure><img src="{esc(rel_path)}" alt="{esc(alt)}"><figcaption>{esc(alt)}</figcaption></figure>'


def md_img(rel_path: str, alt: str) -> str:
    safe_alt = md_text(alt).replace("[", "(").replace("]", ")")
    return f"![{safe_alt}]({rel_path})"
