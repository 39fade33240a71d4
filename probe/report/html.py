"""One self-contained HTML report of a run folder (figures embedded as base64 PNG, no network).

Every section reads its inputs from the run folder (:class:`~probe.report.layout.RunPaths`) and renders only
when they exist; otherwise it says what is missing and why (the pipeline's note for a skipped stage). The
validated semantic map comes first; without swap results the probe map stands in, labelled unvalidated.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment
from markupsafe import Markup

from probe.report.caveats import declared_table, localization_table, tokenizer_caveats, training_facts
from probe.report.layout import OPTIMIZE_TASKS, RunPaths

#: The background of the semantic map table's header row: a colour no figure uses, so a screenshot test can find
#: the table by it (tests/test_report.py).
MAP_HEADER_RGB = (0, 110, 160)

#: An attribute whose gap the reconstructions keep less than this share of is flagged above the map.
ERASED = 0.1

#: Columns of the validated map, in the order shown (the others are behind a "more columns" toggle).
VALIDATED_COLUMNS = ("attribute", "positions", "transfer", "ci_low", "ci_high", "ci_low_adj", "verdict", "specificity",
                     "entangled_with", "probe_rank", "source")

#: What each column of the validated map means (the report's legend; a column not here is shown without one).
LEGEND: dict[str, str] = {
    "attribute": "the attribute swapped (pairs of images from its two opposite ends)",
    "positions": "the token position (or set, 3+7) whose donor tokens were pasted into the recipient",
    "transfer": "the fraction of the donor-recipient gap the paste moves the recipient's measured attribute "
                "(0: nothing, 1: all the way to the donor)",
    "ci_low": "lower bound of the transfer's bootstrap 95% interval",
    "ci_low_adj": "the family-wise lower bound of the transfer (adjusted for the positions tried); the verdict "
                  "reads it",
    "failed": "the part of the rule a rejected or weak mapping failed",
    "visibility": "whether the measurer tells the attribute's two ends apart on the reconstructions",
    "kept": "the share of the originals' gap the reconstructions keep",
    "n_pairs": "confirmation pairs: every number of the row is measured on them",
    "discovery_pairs": "discovery pairs, on other images: the position was selected on them",
    "ci_high": "upper bound of that interval. A fraction of the gap can exceed 1: a swapped image can overshoot the "
               "donor's value (decoders exaggerate), and with few pairs the bootstrap spreads past it",
    "verdict": "confirmed / weak / rejected by the rule above; not reconstructed / not visible: not testable; "
               "untested: no measurer or not selected",
    "specificity": "specific: no other attribute moves by more than its threshold beyond a random-position paste; "
                   "entangled: some do (entangled_with names them)",
    "entangled_with": "the other attributes the paste moves too",
    "probe_rank": "the rank the probes gave this position for the attribute (1: their top)",
    "source": "single: one position suffices; greedy: the smallest set the greedy search found; candidate: the "
              "probes' candidates only",
    "set_size": "number of positions in the set",
    "iia": "interchange-intervention accuracy: share of swaps whose result is nearer the donor than the recipient",
    "d_random": "effect size (Cohen's d) of the paste against pasting at a random other position",
    "d_same_end": "effect size against a donor from the recipient's own end (same attribute value)",
    "max_off_target": "the largest movement of another attribute, as a fraction of its own gap",
    "best_single": "the best single position, where the answer is a set",
    "best_single_transfer": "its transfer",
}


@dataclass
class Section:
    """One part of the report: ``body`` is HTML; ``missing`` (when set) replaces it with a note."""

    id: str
    title: str
    body: str = ""
    missing: str | None = None


def _read_csv(path: Path) -> pd.DataFrame | None:
    """The table at ``path`` (an empty one for a file without rows or columns), ``None`` when there is no file."""
    if not path.exists():
        return None
    try:
        # keep_default_na=False: an attribute is literally named "null", which pandas would read as NaN
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def image(path: Path, alt: str, *, width: str | None = None) -> str:
    """An ``<img>`` with the PNG embedded as base64 (the report must open without the run folder)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    style = f' style="max-width:{width}"' if width else ""
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"{style}>'
            f"<figcaption>{html.escape(alt)} <code>{html.escape(path.name)}</code></figcaption></figure>")


def table(df: pd.DataFrame, *, css: str = "data", table_id: str | None = None, max_rows: int = 60) -> str:
    """``df`` as an HTML table (floats with 3 significant digits); longer tables are cut with a note."""
    shown = df.head(max_rows)
    out = shown.to_html(index=False, classes=css, border=0, na_rep="", float_format=lambda v: f"{v:.3g}",
                        table_id=table_id, escape=True)
    if len(df) > max_rows:
        out += f'<p class="note">first {max_rows} of {len(df)} rows</p>'
    return out


def _figures(paths: list[Path], caption: Callable[[Path], str]) -> str:
    return '<div class="figs">' + "".join(image(p, caption(p)) for p in paths) + "</div>"


def _pretty(name: str) -> str:
    return name.replace("_", " ")


class _Report:
    """Builds the sections of one run folder."""

    def __init__(self, run: RunPaths) -> None:
        self.run = run
        self.config = _read_json(run.config)
        self.stages: dict[str, dict[str, Any]] = {s["stage"]: s for s in self.config.get("stages", [])}
        # a folder made by the separate commands: no run config; the store's header names the tokenizer, and
        # `tokenprobe probe` draws its figures under probes/figures
        self.tokenizer = self.config.get("tokenizer") or _read_json(run.store / "header.json").get("tokenizer_id")
        self.figures = run.figures if run.figures.is_dir() else run.probes / "figures"

    def why_missing(self, stage: str, what: str) -> str:
        """``what`` is missing; the pipeline's note for ``stage`` says why, when it skipped it."""
        note = self.stages.get(stage, {}).get("note")
        return f"{what} is missing: {note}" if note else f"{what} is missing (the {stage} stage has not written it)."

    # --- sections -----------------------------------------------------------------------------------------------
    def random_weights(self) -> str:
        """The first line of a report on random weights (empty otherwise)."""
        if not self.config.get("random_init"):
            return ""
        return ('<p class="warn" id="random-weights"><b>Random weights:</b> this tokenizer was built with random '
                "weights (a plumbing check): its reconstructions, maps and verdicts carry no semantics.</p>")

    def reconstruction(self) -> Section:
        summary = _read_json(self.run.reconstruction_summary)
        if not summary:
            return Section("reconstruction", "Reconstruction",
                           missing=self.why_missing("reconstruction", "The reconstruction check "
                                                                      "(reconstruction/summary.json)"))
        body = (f'<p>On {summary["images"]} of the run\'s images the tokenizer\'s reconstructions reach '
                f'<b>PSNR {summary["psnr"]:.1f} dB</b> and <b>SSIM {summary["ssim"]:.3f}</b> (1 = identical). A swap '
                "cannot move more of an attribute than the reconstructions keep of it:</p>")
        kept = _read_csv(self.run.reconstruction_attributes)
        if kept is not None and len(kept):
            shares = "; ".join(f"{r.attribute} {r.kept:.2f}" for r in kept.itertuples()
                               if isinstance(r.kept, float) and r.kept == r.kept)
            body += (f'<p id="kept">share of the gap kept: {html.escape(shares)}</p><p class="note">the mean gap '
                     "between two images from opposite ends of the attribute as its measurer reads the reconstructions, "
                     "over the same gap read on the originals (1: kept, 0: erased); all numbers in "
                     "<code>reconstruction/attributes.csv</code></p>")
        if self.run.reconstruction_examples.exists():
            body = (f'<div class="side"><div>{body}</div><div style="flex:0 0 380px">'
                    + image(self.run.reconstruction_examples, "originals (top), reconstructions (bottom)")
                    + "</div></div>")
        return Section("reconstruction", "Reconstruction", body)

    def semantic_map(self) -> Section:
        vmap = _read_csv(self.run.validated_map)
        if vmap is not None and len(vmap):
            return Section("semantic-map", "Validated semantic map", self._validated_map(vmap))
        summary = _read_csv(self.run.summary)
        if summary is None:
            return Section("semantic-map", "Semantic map",
                           missing=self.why_missing("probes", "The probe map (probes/summary.csv)"))
        why = self.stages.get("swap", {}).get("note") or "the swap stage has not written swap/validated_map.csv"
        body = ('<p class="warn"><b>Unvalidated: the probe map.</b> These are the positions the probes rank first '
                f"(a correlation), not positions that swaps confirmed. Why: {html.escape(why)}</p>")
        summary = summary.drop(columns=["rank_by"], errors="ignore")
        return Section("semantic-map", "Probe map (unvalidated)", body + table(summary, css="data map", table_id="map"))

    def erased(self) -> list[str]:
        """The attributes whose gap the reconstructions keep less than :data:`ERASED` of."""
        kept = _read_csv(self.run.reconstruction_attributes)
        if kept is None or "kept" not in kept:
            return []
        values = pd.to_numeric(kept["kept"], errors="coerce")
        return [str(a) for a, v in zip(kept["attribute"], values) if v == v and v < ERASED]

    def _validated_map(self, vmap: pd.DataFrame) -> str:
        """The map's main columns (fit 1,400 px), untested attributes folded into one line, the other columns
        behind a toggle, and a legend of every column."""
        body = self._untestable_warning(vmap)
        body += ('<p class="ok">Validated by copy-paste token swaps: each row is the position (set) whose swap '
                 "moves the attribute, with its transfer (fraction of the donor-recipient gap moved along the "
                 "labels' direction, 95% interval, and the family-wise lower bound <code>ci_low_adj</code> the "
                 "verdict reads), its specificity and the rank the probes gave it. The position was selected on "
                 "discovery pairs; every number shown was measured on confirmation pairs that share no image with "
                 "them.</p>")
        thresholds = _read_json(self.run.swap_config).get("thresholds")
        if thresholds:
            text = thresholds if isinstance(thresholds, str) else json.dumps(thresholds)
            body += f'<p class="note">verdict rule: {html.escape(text)}</p>'
        erased = self.erased()
        if erased:
            body += (f'<p class="warn" id="erased">The reconstructions keep less than {ERASED:.0%} of the gap of '
                     f"{html.escape(', '.join(erased))}: a swap there moves readings of images that barely differ, "
                     "so its transfer (a ratio of tiny numbers) says nothing about the tokens.</p>")
        untested = vmap[vmap["verdict"] == "untested"] if "verdict" in vmap else vmap.iloc[:0]
        tested = vmap.drop(untested.index)
        main = [c for c in VALIDATED_COLUMNS if c in tested.columns]
        body += table(tested[main], css="data map", table_id="map")
        if len(untested):
            why = "source" if "source" in untested else None
            items = ", ".join(f"{r.attribute}" + (f" ({getattr(r, why)})" if why and isinstance(getattr(r, why), str)
                                                   else "") for r in untested.itertuples())
            body += f'<p class="note" id="untested">untested: {html.escape(items)}</p>'
        rest = [c for c in tested.columns if c not in VALIDATED_COLUMNS]
        if rest:
            body += ("<details><summary>more columns (" + html.escape(", ".join(rest)) + ")</summary>"
                     + table(tested[["attribute", *rest]]) + "</details>")
        shown = [c for c in [*main, *rest] if c in LEGEND]
        body += ('<dl class="legend" id="legend">' + "".join(
            f"<dt>{html.escape(c)}</dt><dd>{html.escape(LEGEND[c])}</dd>" for c in shown) + "</dl>")
        return body

    def _untestable_warning(self, vmap: pd.DataFrame) -> str:
        """A warning first when the tokenizer has random weights or attributes were not testable."""
        out = ""
        # random weights: said in the page's first line (random_weights)
        if "verdict" in vmap.columns:
            lost = vmap[vmap["verdict"].isin(["not reconstructed", "not visible"])]
            if len(lost):
                names = ", ".join(f"{a} ({v})" for a, v in zip(lost["attribute"], lost["verdict"]))
                out += (f'<p class="warn"><b>Not testable:</b> {html.escape(names)}. "not reconstructed": the '
                        "reconstructions keep less of the originals' gap than the rule asks; \"not visible\": the "
                        "measurer does not tell the labels' ends apart on the reconstructions.</p>")
        return out

    def heatmaps(self) -> Section:
        rank_by = _read_json(self.run.semantic_map).get("rank_by", "ami")
        probe_maps = [p for p in [self.figures / f"heatmap_{rank_by}.png"] if p.exists()] or sorted(
            self.figures.glob("heatmap_*.png"))
        if self.run.causal_heatmap.exists():  # the swap engine draws the two side by side already
            body = image(self.run.causal_heatmap, "Swap transfer per position (left: causal) beside the probes' "
                                                  "ranking (right: correlation)")
        else:
            left = (image(probe_maps[0], f"Probe heatmap ({rank_by}: correlation)") if probe_maps
                    else f'<p class="missing">{html.escape(self.why_missing("probes", "The probe heatmap"))}</p>')
            right = f'<p class="missing">{html.escape(self.why_missing("swap", "The causal heatmap"))}</p>'
            body = f'<div class="side"><div>{left}</div><div>{right}</div></div>'
        agreement = _read_csv(self.run.rank_agreement)
        if agreement is not None:
            body += ("<h3>Rank agreement per attribute (Spearman of probe effect and swap transfer over positions)"
                     "</h3>" + table(agreement))
        return Section("heatmaps", "Probe and causal heatmaps", body)

    def attribution(self) -> Section:
        """The attribution estimate beside the causal heatmap, their agreement, and where each position acts."""
        title = "Attribution estimate and where each position acts"
        body = ""
        if self.run.attribution_figure.exists():
            body += image(self.run.attribution_figure, "First-order (attribution patching) estimate of every "
                                                       "single-position swap beside the real swaps' transfer")
        agreement = _read_csv(self.run.attribution_agreement)
        if agreement is not None:
            body += ("<h3>Agreement per attribute: estimate vs real transfer over positions</h3>"
                     '<p class="note">An estimate ranks; only real swaps confirm.</p>' + table(agreement))
        if self.run.spatial_figure.exists():
            body += ("<h3>Where in the image each position acts</h3><p>Mean absolute pixel change when the position "
                     "takes another image's token, one map per position.</p>"
                     + image(self.run.spatial_figure, "Per-position contribution maps"))
        if not body:
            return Section("attribution", title, missing=self.why_missing(
                "swap", "The attribution estimate and spatial maps (swap/attribution_vs_causal.png, "
                        "swap/spatial_abs.png: made when every position is swept with differentiable measurers)"))
        return Section("attribution", title, body)

    def disagreements(self) -> Section:
        df = _read_csv(self.run.disagreements)
        if df is None:
            return Section("disagreements", "Where correlation and causation disagree",
                           missing=self.why_missing("swap", "The disagreement table (swap/disagreements.csv)"))
        if df.empty:
            return Section("disagreements", "Where correlation and causation disagree",
                           '<p>None: for every tested attribute the probes\' top position is the causal one.</p>')
        return Section("disagreements", "Where correlation and causation disagree",
                       "<p>Attributes whose probe top position is not the position swaps confirm.</p>" + table(df))

    def swap_grids(self) -> Section:
        grids = sorted(self.run.swap_grids.glob("*.png"))
        mappings = _read_csv(self.run.mappings)
        if not grids and mappings is None:
            return Section("swaps", "Swap grids",
                           missing=self.why_missing("swap", "Swap grids (swap/grids/*.png)"))
        body = ""
        if grids:
            body += ("<p>Recipient | donor | swapped | controls, for the confirmed mappings.</p>"
                     + _figures(grids, lambda p: _pretty(p.stem)))
        if mappings is not None and "transfer" in mappings.columns and "attribute" in mappings.columns:
            best = (mappings.sort_values("transfer", ascending=False).groupby("attribute", sort=False).head(3)
                    .sort_values(["attribute", "transfer"], ascending=[True, False]))
            body += (f"<h3>The three best-transferring position sets per attribute</h3><p class=\"note\">of "
                     f"{len(mappings)} tested; all of them in <code>swap/mappings.csv</code></p>" + table(best))
        elif mappings is not None:
            body += "<h3>Tested mappings</h3>" + table(mappings)
        return Section("swaps", "Swap grids", body)

    def traversals(self) -> Section:
        figs = sorted(self.run.swap.glob("traversal_*.png"))
        if self.run.greedy_curves.exists():
            figs.append(self.run.greedy_curves)
        if not figs:
            return Section("traversals", "Traversals and position sets",
                           missing=self.why_missing("swap", "Traversal figures (swap/traversal_*.png)"))
        return Section("traversals", "Traversals and position sets",
                       "<p>What a position can do: its response when set to each code, and the transfer of growing "
                       "position sets.</p>" + _figures(figs, lambda p: _pretty(p.stem)))

    def optimize(self) -> list[Section]:
        sections = []
        for task, title in OPTIMIZE_TASKS.items():
            df = _read_csv(self.run.optimize_table(task))
            folder = self.run.optimize_folder(task)
            figs = sorted(folder.glob("*.png"))
            if df is None and not figs:
                sections.append(Section(task, title, missing=self.why_missing(
                    "optimize", f"{title} (optimize/{task}.csv, optimize/{task}/*.png)")))
                continue
            # the grid first, the loss trajectory last
            figs.sort(key=lambda p: (p.stem != "grid", p.stem == "trajectory", p.stem))
            body = (table(df) if df is not None else "") + _figures(figs, lambda p: _pretty(p.stem))
            sections.append(Section(task, title, body))
        return sections

    def probe_details(self) -> Section:
        page = self.figures / "summary.png"
        if not page.exists():
            return Section("probe-details", "Probe summary page",
                           missing=self.why_missing("probes", "The one-page probe summary (figures/summary.png)"))
        return Section("probe-details", "Probe summary page", image(page, "Probe summary"))

    def caveats(self) -> Section:
        spec = self.tokenizer
        if not spec:
            return Section("caveats", "Caveats of the tokenizer", missing="config.json names no tokenizer.")
        items = "".join(f"<li>{html.escape(c)}</li>" for c in tokenizer_caveats(str(spec)))
        body = f"<p>Tokenizer <code>{html.escape(str(spec))}</code>.</p><ul>{items}</ul>"
        facts = training_facts(str(spec))
        if facts:
            body += "<h3>How it was trained and measured</h3>" + table(
                pd.DataFrame({"fact": list(facts), "value": [str(v) for v in facts.values()]}))
        declared = declared_table(str(spec))
        if not declared.empty:
            body += ("<h3>The mapping it declares (its zoo record): what a validated map should agree with</h3>"
                     + table(declared))
        loc = localization_table(str(spec))
        if not loc.empty:
            body += "<h3>Its recorded single-token swaps (at training time)</h3>" + table(loc)
        return Section("caveats", "Caveats of the tokenizer", body)

    def config_and_versions(self) -> Section:
        body = ""
        if self.run.run_yaml.exists():
            body += f"<h3>run.yaml</h3><pre>{html.escape(self.run.run_yaml.read_text())}</pre>"
        if self.config:
            body += f"<h3>config.json</h3><pre>{html.escape(json.dumps(self.config, indent=2, default=str))}</pre>"
        header = _read_json(self.run.store / "header.json")
        if header.get("versions"):
            body += "<h3>Versions (token store)</h3>" + table(
                pd.DataFrame({"package": list(header["versions"]), "version": list(header["versions"].values())}))
        if not body:
            return Section("config", "Config and versions", missing="config.json is missing.")
        return Section("config", "Config and versions", body)

    def stage_table(self) -> str:
        """One line of stage statuses (the table behind a toggle); a failed stage's note stands out above it."""
        if not self.stages:
            return ""
        df = pd.DataFrame([{k: s.get(k, "") for k in ("stage", "status", "seconds", "note")}
                           for s in self.stages.values()])
        failed = "".join(f'<p class="warn">{html.escape(str(s.get("note", "")))}</p>' for s in self.stages.values()
                         if s.get("status") == "failed")
        line = ", ".join(f"{s['stage']} {s.get('status', '')}" for s in self.stages.values())
        return (f'{failed}<details class="stages"><summary>stages: {html.escape(line)}</summary>'
                + table(df, css="data stages") + "</details>")

    def sections(self) -> list[Section]:
        return [self.reconstruction(), self.semantic_map(), self.heatmaps(), self.attribution(), self.disagreements(), self.swap_grids(), self.traversals(),
                *self.optimize(), self.probe_details(), self.caveats(), self.config_and_versions()]


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1360px;
       padding: 0 16px; color: #1b1b1b; background: #ffffff; line-height: 1.4; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { font-size: 20px; border-bottom: 2px solid #ddd; padding-bottom: 3px;
margin-top: 30px; } h3 { font-size: 15px; }
table.data { border-collapse: collapse; font-size: 13px; margin: 8px 0; display: block; overflow-x: auto;
             max-width: 100%; }
table.data th { background: #e6e6e6; padding: 4px 8px; text-align: left; }
table.data td { padding: 3px 8px; border-bottom: 1px solid #e2e2e2; }
table.map { font-size: 15px; }
table.map th { background: rgb{{ map_rgb }}; color: #ffffff; padding: 8px 10px; }
table.map td { padding: 5px 10px; }
.side { display: flex; gap: 16px; align-items: flex-start; } .side > div { flex: 1; min-width: 0; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; }
.warn { background: #fff4d6; border-left: 5px solid #e0a800; padding: 8px 12px; }
.ok { background: #e5f5e8; border-left: 5px solid #2e9d46; padding: 8px 12px; }
.missing { color: #7a7a7a; font-style: italic; background: #f6f6f6; padding: 8px 12px; }
.note { color: #666; font-size: 12px; } pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
nav a { margin-right: 10px; font-size: 13px; }
dl.legend { font-size: 13px; display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; max-width: 1300px; }
dl.legend dt { font-weight: bold; } dl.legend dd { margin: 0; }
details { margin: 6px 0; font-size: 13px; }
</style></head><body>
<h1>{{ title }}</h1>
{{ random_weights }}<p class="note">run folder <code>{{ root }}</code> &middot; tokenizer <code>{{ tokenizer }}</code> &middot;
report written {{ written }}</p>
<nav>{% for s in sections %}<a href="#{{ s.id }}">{{ s.title }}</a>{% endfor %}</nav>
{{ stage_table }}
{% for s in sections %}<section id="{{ s.id }}"><h2>{{ s.title }}</h2>
{% if s.missing %}<p class="missing">{{ s.missing }}</p>{% else %}{{ s.body }}{% endif %}
</section>
{% endfor %}
</body></html>
"""


def build_report(run_dir: str | Path, *, title: str | None = None) -> str:
    """The report of run folder ``run_dir`` as one HTML string (see the module docstring)."""
    run = RunPaths(run_dir)
    rep = _Report(run)
    sections = rep.sections()
    for s in sections:
        s.body = Markup(s.body)  # built from escaped parts above
    env = Environment(autoescape=True)
    return env.from_string(_PAGE).render(
        title=title or rep.config.get("title") or f"tokenprobe report: {run.root.name}",
        root=str(run.root), tokenizer=rep.tokenizer or "not recorded",
        written=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        map_rgb=MAP_HEADER_RGB, random_weights=Markup(rep.random_weights()), stage_table=Markup(rep.stage_table()), sections=sections)


def render_report(run_dir: str | Path, out: str | Path | None = None, *, title: str | None = None) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``) and return its path."""
    path = Path(out) if out is not None else RunPaths(run_dir).report
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(run_dir, title=title), encoding="utf-8")
    return path
