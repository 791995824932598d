"""The run report's HTML: one file, inline CSS and JS, images linked relative to the page.

No external resources (the page works offline and inside hospital networks). Thumbnails are the
QA images themselves, scaled by CSS and lazy-loaded, so a 1,000-patient page loads only what is on
screen; a click opens the full image.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from gcmlm.report.core.collect import Image, Patient, RunFacts

CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 2em;max-width:1400px;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:12em}
.card b{font-size:1.5em;display:block}.muted{color:#666}.flag{color:#b00020;font-weight:600}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4;cursor:pointer;position:sticky;top:0;white-space:nowrap}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}tr.outlier td:first-child{border-left:4px solid #b00020}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}.gallery figure{margin:0;width:180px}
.gallery img{width:180px;height:135px;object-fit:contain;background:#111;display:block}
.gallery figcaption{font-size:.8em;overflow-wrap:anywhere}
#heatmap-gallery figure{width:320px}#heatmap-gallery img{width:320px;height:240px}
ul.warn{max-height:20em;overflow:auto;font-size:.9em}
"""

# Sorting by a column's data-v values (numbers compare as numbers, blanks last) and a text filter.
JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null||v==='')return null;var n=Number(v);return isNaN(n)?v.toLowerCase():n;}
  document.querySelectorAll('table.sortable').forEach(function(table){
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.addEventListener('click',function(){
        var asc=th.getAttribute('aria-sort')!=='ascending';
        Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
        th.setAttribute('aria-sort',asc?'ascending':'descending');
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
          if(x===y)return 0;if(x===null)return 1;if(y===null)return -1;
          if(typeof x!==typeof y){x=String(x);y=String(y);}return (x<y?-1:1)*(asc?1:-1);});
        var frag=document.createDocumentFragment();rows.forEach(function(r){frag.appendChild(r);});body.appendChild(frag);
      });
    });
  });
  var filter=document.getElementById('filter');
  if(filter){filter.addEventListener('input',function(){var q=filter.value.toLowerCase();
    document.querySelectorAll('#patients tbody tr').forEach(function(r){r.hidden=q&&r.textContent.toLowerCase().indexOf(q)<0;});});}
})();
"""

e = html.escape


def link(path: Path, root: Path) -> str:
    """A URL relative to the results root (where the page sits), so the tree can be moved as a whole."""
    rel = Path(os.path.relpath(path, root)).as_posix()
    return e("/".join(part.replace("%", "%25").replace("#", "%23").replace("?", "%3F") for part in rel.split("/")))


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def cell(value, text: str | None = None, num: bool = False) -> str:
    shown = fmt(value) if text is None else text
    return f'<td{" class=num" if num else ""} data-v="{e(fmt(value, 6))}">{e(shown)}</td>'


def cards(facts: RunFacts) -> str:
    n_cts = sum(p.has_ct for p in facts.patients.values())
    n_slides = sum(len(p.slides) for p in facts.patients.values())
    items = [("patients", len(facts.patients), facts.expected.get("patients")),
             ("CTs", n_cts, facts.expected.get("CTs")), ("slides", n_slides, facts.expected.get("slides")),
             ("flagged patients", sum(bool(p.flags) for p in facts.patients.values()), None)]
    out = []
    for name, count, expected in items:
        note = f'<span class=muted>of {expected} in the manifest</span>' if expected is not None else ""
        out.append(f"<div class=card><b>{count}</b>{e(name)} {note}</div>")
    return f"<div class=cards>{''.join(out)}</div>"


def produced(facts: RunFacts) -> str:
    rows = "".join(f"<tr><th>{e(branch)}</th><td>{e(', '.join(f'{k}: {v}' for k, v in what.items()))}</td></tr>"
                   for branch, what in facts.produced.items())
    return f"<table id=produced><tbody>{rows}</tbody></table>"


def join_section(facts: RunFacts) -> str:
    if facts.join is None:
        return "<p class=muted>No join report (fusion-merge did not run).</p>"
    policy = e(str(facts.join.get("policy", "")))
    problems = facts.join.get("problem_patients") or {}
    if not problems:
        return f"<p>Every patient was in every table (policy <code>{policy}</code>).</p>"
    dropped = set(facts.join.get("dropped_patients") or [])
    items = "".join(f"<li><b>{e(pid)}</b> ({'dropped' if pid in dropped else 'kept'}): {e('; '.join(map(str, why)))}</li>"
                    for pid, why in sorted(problems.items()))
    return (f"<p>{len(problems)} patient(s) with join problems, policy <code>{policy}</code>; "
            f"{len(dropped)} dropped.</p><ul id=dropped class=warn>{items}</ul>")


def model_section(facts: RunFacts, root: Path) -> str:
    parts = []
    if facts.model_aucs:
        parts.append("<p>Nested-CV AUC: " + ", ".join(f"{e(m)} {a:.3f}" for m, a in facts.model_aucs.items()) + "</p>")
    if facts.model_report:
        parts.append(f'<p><a id=model-report href="{link(facts.model_report, root)}">Model report</a> (fusion-train)</p>')
    if facts.external_report:
        parts.append(f'<p><a href="{link(facts.external_report, root)}">External evaluation report</a></p>')
    return "".join(parts) or "<p class=muted>No model was trained in this run.</p>"


def patient_row(p: Patient, mil: bool = False) -> str:
    slides = ", ".join(f"{s.slide_id}: {fmt(s.n_patches) or '?'}" for s in p.slides)
    fusion = {None: "", True: "merged", False: "dropped"}[p.in_fusion]
    warnings = "; ".join(p.warnings + p.drop_reasons)
    cells = [cell(p.patient_id), cell(p.tumour_ml, num=True), cell(p.dice, fmt(p.dice, 3), num=True),
             cell(len(p.slides), num=True), cell(p.n_patches, num=True), cell(slides),
             cell(p.tissue_mm2, fmt(p.tissue_mm2, 2), num=True), cell(fusion),
             cell(len(p.flags), "; ".join(p.flags)), cell(len(p.warnings), warnings)]
    if mil:
        cells.append(cell(p.mil_risk, fmt(p.mil_risk, 3), num=True))
    return f'<tr{" class=outlier" if p.flags else ""}>{"".join(cells)}</tr>'


def patient_table(facts: RunFacts) -> str:
    heads = ["patient", "tumour (mL)", "mask/label Dice", "slides", "patches", "patches per slide",
             "tissue (mm²)", "fusion", "flags", "warnings"]
    mil = any(p.mil_risk is not None for p in facts.patients.values())  # slide_model abmil
    heads += ["MIL risk (in-sample)"] if mil else []
    head = "".join(f"<th>{e(h)}</th>" for h in heads)
    body = "\n".join(patient_row(p, mil) for p in facts.patients.values())
    return (f'<p><input id=filter type=search placeholder="filter patients" aria-label="filter patients"></p>'
            f'<div class=scroll><table id=patients class=sortable><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>")


def outliers(facts: RunFacts) -> str:
    flagged = [p for p in facts.patients.values() if p.flags]
    if not flagged:
        return "<p>No outliers.</p>"
    items = "".join(f"<li><b>{e(p.patient_id)}</b>: <span class=flag>{e('; '.join(p.flags))}</span></li>"
                    for p in flagged)
    return f"<ul id=outliers class=warn>{items}</ul>"


def gallery(images: list[Image], root: Path, element_id: str) -> str:
    if not images:
        return "<p class=muted>No QA images.</p>"
    figures = []
    for image in images:
        url = link(image.path, root)
        figures.append(f'<figure data-kind="{e(image.kind)}"><a href="{url}" target="_blank">'
                       f'<img loading="lazy" decoding="async" src="{url}" alt="{e(image.caption)}"></a>'
                       f"<figcaption>{e(image.caption)}</figcaption></figure>")
    return f"<div id={element_id} class=gallery>{''.join(figures)}</div>"


def heatmap_section(facts: RunFacts, root: Path) -> str:
    """slide_model abmil: the attention heatmaps the workflow drew, highest MIL risk first."""
    heatmaps = sorted((i for i in facts.images if i.kind == "heatmap"),
                      key=lambda i: (i.mil_risk is None, -(i.mil_risk or 0.0), i.caption))
    if not heatmaps:
        return ""
    note = ("<p class=muted>Attention of the MIL model trained on every patient (pathology/mil/), for the slides "
            "of highest MIL risk: colour is a patch's attention percentile within its slide, boxes are the "
            "top-attention regions (the GeoJSON beside each PNG opens in QuPath). Risks are in-sample; MIL's "
            "performance is the nested-CV AUC of path_mil in the model report.</p>")
    return f"<h2>MIL attention heatmaps</h2>{note}{gallery(heatmaps, root, 'heatmap-gallery')}"


def warnings_section(facts: RunFacts) -> str:
    if not facts.cohort_warnings:
        return ""
    items = "".join(f"<li>{e(w)}</li>" for w in facts.cohort_warnings)
    return f"<h2>Other warnings</h2><ul class=warn>{items}</ul>"


def render(facts: RunFacts, root: Path, title: str, min_patches: int) -> str:
    ct_images = [i for i in facts.images if i.kind == "ct"]
    slide_images = [i for i in facts.images if i.kind in ("tissue", "patches")]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{e(title)}</title><style>{CSS}</style></head><body>
<h1>{e(title)}</h1>
<h2>Cohort at a glance</h2>{cards(facts)}
<h3>What each branch produced</h3>{produced(facts)}
<h3>Fusion join</h3>{join_section(facts)}
<h3>Model</h3>{model_section(facts, root)}
<h2>Outliers</h2><p class=muted>Empty masks, mask/label disagreement, slides with fewer than {min_patches} patches,
patients dropped at the join.</p>{outliers(facts)}
<h2>Patients</h2><p class=muted>Click a column to sort.</p>{patient_table(facts)}
<h2>CT overlays</h2>{gallery(ct_images, root, "ct-gallery")}
<h2>Slides: tissue and patch maps</h2>{gallery(slide_images, root, "slide-gallery")}
{heatmap_section(facts, root)}
{warnings_section(facts)}
<script>{JS}</script></body></html>
"""
