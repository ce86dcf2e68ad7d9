"""HTML of the report: one self-contained document (inline CSS, plotly.js embedded once, no network)."""

from __future__ import annotations

import html as _html
import math
from dataclasses import dataclass, field

import pandas as pd

CSS = """
@page { size: Letter; margin: 12mm; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 10.5pt; color: #1b1b1b;
       max-width: 760px; margin: 0 auto; padding: 12px; }
h1 { font-size: 18pt; margin: 0 0 4px 0; color: #1f3b73; }
h2 { font-size: 13.5pt; color: #1f3b73; border-bottom: 2px solid #1f3b73; padding-bottom: 2px; margin-top: 22px;
     break-after: avoid; }
h3 { font-size: 11pt; margin: 14px 0 4px 0; break-after: avoid; }
p.note, .note { color: #555; font-size: 9pt; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px 0; font-size: 8.5pt; }
th, td { border: 1px solid #c8cdd6; padding: 2px 5px; vertical-align: top; text-align: left; }
th { background: #eef1f6; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr { break-inside: avoid; }
table.kpi td:first-child { width: 55%; }
table.assumptions { table-layout: fixed; }
table.assumptions td { overflow-wrap: anywhere; }
table.assumptions th:nth-child(1) { width: 12%; } table.assumptions th:nth-child(2) { width: 16%; }
table.assumptions th:nth-child(3) { width: 30%; } table.assumptions th:nth-child(4) { width: 31%; }
table.assumptions th:nth-child(5) { width: 11%; }
table.assumptions td:nth-child(3), table.assumptions td:nth-child(4) { font-size: 7.5pt; }
.conf-published { background: #e6f4ea; } .conf-derived { background: #fff6db; } .conf-assumed { background: #fde8e6; }
.conf-missing { background: #f3d1d1; font-weight: bold; }
.fig { break-inside: avoid; margin: 6px 0 12px 0; }
table.meta { table-layout: fixed; }
.meta td:first-child { width: 30%; color: #444; }
table.meta td.num { white-space: normal; text-align: left; overflow-wrap: anywhere; }
section { break-before: auto; }
section.newpage { break-before: page; }
details > summary { cursor: pointer; color: #1f3b73; }
@media print { details > summary { display: none; } details:not([open]) > *:not(summary) { display: none; } }
"""


def esc(v) -> str:
    return _html.escape(str(v), quote=True)


def fmt(v, digits: int = 3) -> str:
    """Numbers for tables: thousands separators, `digits` significant figures below 1,000."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a == 0:
            return "0"
        if a >= 100:
            return f"{v:,.1f}"
        if a >= 10:
            return f"{v:,.2f}"
        return f"{v:.{digits}g}" if a < 1 else f"{v:,.3f}"
    return str(v)


def fmt_mw(mw: float) -> str:
    """A power in MW as the report prints it: 2 decimals at 10 MW and above, else 3."""
    return f"{mw:,.2f} MW" if abs(mw) >= 10 else f"{mw:,.3f} MW"


@dataclass
class Section:
    id: str
    title: str
    blocks: list[str] = field(default_factory=list)
    newpage: bool = False

    def add(self, block: str) -> Section:
        self.blocks.append(block)
        return self

    def h3(self, text: str) -> Section:
        return self.add(f"<h3>{esc(text)}</h3>")

    def note(self, text: str) -> Section:
        return self.add(f'<p class="note">{esc(text)}</p>')

    def p(self, text: str) -> Section:
        return self.add(f"<p>{esc(text)}</p>")


def kv_table(rows: list[tuple], cls: str = "kpi") -> str:
    """Rows of (label, value text) or (label, value text, kpi key): the key goes into data-kpi for machines."""
    out = [f'<table class="{cls}"><tbody>']
    for r in rows:
        label, value = r[0], r[1]
        key = f' data-kpi="{esc(r[2])}"' if len(r) > 2 and r[2] else ""
        out.append(f'<tr><td>{esc(label)}</td><td class="num"{key}>{esc(value)}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def df_table(df: pd.DataFrame, cls: str = "", headers: dict[str, str] | None = None, row_class=None) -> str:
    headers = headers or {}
    out = [f'<table class="{cls}"><thead><tr>']
    out += [f"<th>{esc(headers.get(c, c))}</th>" for c in df.columns]
    out.append("</tr></thead><tbody>")
    for rec in df.itertuples(index=False):
        rc = row_class(rec) if row_class else ""
        out.append(f'<tr class="{rc}">' if rc else "<tr>")
        for v in rec:
            num = isinstance(v, int | float) and not isinstance(v, bool)
            out.append(f'<td class="num">{esc(fmt(v))}</td>' if num else f"<td>{esc(v)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def document(title: str, subtitle: str, meta_rows: list[tuple], sections: list[Section], plotly_js: str) -> str:
    toc = "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a></li>' for s in sections)
    body = []
    for s in sections:
        cls = ' class="newpage"' if s.newpage else ""
        body.append(f'<section id="{esc(s.id)}"{cls}><h2>{esc(s.title)}</h2>{"".join(s.blocks)}</section>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{plotly_js}</script></head><body>'
        f"<h1>{esc(title)}</h1><p>{esc(subtitle)}</p>{kv_table(meta_rows, 'meta')}"
        f"<p class=\"note\">Contents:</p><ol class=\"note\">{toc}</ol>"
        f"{''.join(body)}</body></html>\n"
    )
