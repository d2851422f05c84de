"""Report stage: tables carry the numbers, escaping, honest labels, missing inputs, figures."""

from __future__ import annotations

import copy
import json
import html
import re
import shutil
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml
from PIL import Image

from fewgan.report import ReportInputError, run
from fewgan.schemas.report import REPORT_SCHEMA
from fewgan.report.stage import PAPER_FID_256, _display_table

from .conftest import EVIL_DATASET, MODELS, UNTRAINED, build_tree, fid_of


def _run(t, **report_overrides):
    params = copy.deepcopy(t["params"])
    params["report"].update(report_overrides)
    return run(params, t["runs"], t["data"], t["out"])


def test_summary_csv_holds_the_numbers(built):
    s = built["summary"]
    assert len(s) == 4
    assert list(s["dataset"]) == ["faces", "faces", EVIL_DATASET, EVIL_DATASET]
    assert list(s["model"]) == MODELS * 2
    for di, d in enumerate(built["datasets"]):
        for mi, m in enumerate(MODELS):
            r = s[(s["dataset"] == d) & (s["model"] == m)].iloc[0]
            assert r["fid_train"] == pytest.approx(fid_of(di, mi))
            assert r["fid_test"] == pytest.approx(fid_of(di, mi) + 7.0)
            assert r["kid_train_x1e3"] == pytest.approx(12.345 + mi)
            assert r["kid_train_std_x1e3"] == pytest.approx(1.25)
            assert r["swd_mean_x1e3"] == pytest.approx(20.0 + mi)
            assert r["msssim_fake"] == pytest.approx(0.25)
            assert r["best_iteration"] == 300
            # inversion: test split only, first and last snapshot
            assert r["inversion_first_iteration"] == 100 and r["inversion_last_iteration"] == 300
            assert r["inversion_lpips_first"] == pytest.approx(0.3 + 0.01 * (mi + 1))
            assert r["inversion_lpips_last"] == pytest.approx(0.3 + 0.03 * (mi + 1))
            assert r["train_s_per_iter"] == pytest.approx(0.3 + mi)
            assert r["params_G"] == 1234567 + mi
    assert list(s["synthetic"]) == [True, True, False, False]


def test_readme_and_html_show_the_numbers(built):
    for doc in (built["md"], built["html"]):
        assert "40.12" in doc and "51.62" in doc          # FID train (faces/fastgan, evil/dcgan)
        assert "47.12" in doc                             # FID test
        assert "12.35 ± 1.25" in doc                      # KID x1e3 with its std
        assert "MS-SSIM 0.6000 (it 100) → 0.8000 (it 300); PSNR 20.00 → 20.00 dB" in doc  # inversion headline
        assert "1,234,568 / 765,432" in doc               # parameter counts


def test_untrained_label_is_said_once_above_the_fid_values_not_in_every_row(built):
    assert (built["summary"]["feature_extractor"] == UNTRAINED).all()  # summary.csv keeps it per row
    assert not built["summary"]["feature_extractor_standard"].any()
    html, md = built["html"], built["md"]
    # a banner, and no table row repeats the label
    assert f"⚠ Every FID/KID value in this report was computed with {UNTRAINED}" in md
    assert "fewgan selected snapshots and ranks models by SWD instead (no pretrained network)" in md
    assert '<div class="banner">' in html and UNTRAINED in html.split('<div class="banner">')[1][:300]
    assert not [tr for tr in re.findall(r"<tr>.*?</tr>", html) if UNTRAINED in tr]
    assert not [ln for ln in md.splitlines() if ln.startswith("|") and UNTRAINED in ln]
    # ... but once above each table of FID values, in "Same for every row"
    results = html.split('id="results"', 1)[1]
    tables = re.findall(r'<h4>([^<]*)</h4>\s*<div class="same">(.*?)</div>\s*<table class="results">(.*?)</table>',
                        results, re.S)
    fid = [(title, same, table) for title, same, table in tables if "<th>FID train</th>" in table]
    assert len(fid) == len(built["datasets"])
    for title, same, table in fid:
        assert "<strong>feature extractor</strong>: untrained, not comparable to published FID" in same
        assert "40.12" in table or "50.12" in table  # the FID values it labels
        assert "feature extractor" not in table
        assert title == ("metrics in Inception features (FID, KID): not for decisions here (the extractor does not "
                         "have its standard weights)")
    # the every-metric table comes in one table per feature space, the ranking metric's (SWD: pixels) first,
    # the untrained Inception's last
    assert [t for t, _, _ in tables[:2]] == ["metrics from pixels (no pretrained network), held-out inversion and cost",
                                             fid[0][0]]
    # the EfficientNet-Lite0 metrics were not computed for any run: no table of n/a, one sentence instead
    assert "<th>FD-EffNet train</th>" not in results
    assert "Not computed for any run of faces: FD-EffNet train, FD-EffNet test" in html
    assert "<th>best it. (selected by)</th>" in tables[0][2] or "best it. (selected by)" in tables[0][1]
    assert md.count("- feature extractor: untrained, not comparable to published FID") == len(built["datasets"])
    # the published numbers live in their own table, never in fewgan's results tables
    paper = re.search(r'<table class="paper">.*?</table>', html).group(0)
    assert "41.05" in paper and "130.19" in paper and "40.12" not in paper
    assert not any("41.05" in t for _, _, t in tables)
    assert "not comparable" in html.split('<div class="paper">')[1][:600]


def test_html_and_markdown_escape_everything(built):
    html, md = built["html"], built["md"]
    assert "<script" not in html.lower() and "<script" not in md.lower()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; friends" in html
    assert "evil&lt;script&gt;x" in html
    assert "bench &lt;b&gt;title&lt;/b&gt;" in html and "<b>title" not in html
    assert "&lt;script&gt;alert" in md


def test_synthetic_dataset_is_labelled(built):
    assert "Synthetic data: faces" in built["md"] and "Synthetic data: faces" in built["html"]
    assert "faces (synthetic)" in built["html"]
    assert f"{EVIL_DATASET} (synthetic)" not in built["summary"].to_string()


def test_figures_are_created(built):
    out = built["out"]
    figs = built["result"]["figures"]
    assert set(figs) == set(built["datasets"])
    for d, rels in figs.items():
        kinds = sorted(Path(r).name.split("_")[0] for r in rels)
        assert kinds == ["fid", "flops", "inversion", "overview", "swd"]
        for rel in rels:
            with Image.open(out / rel) as im:
                assert im.format == "PNG" and im.size[0] > 200
            assert f'src="{rel}"' in built["html"]
    assert len(built["result"]["grids"]) == 8  # samples + reconstructions for 4 cells, copied byte for byte
    src = built["runs"] / "faces" / "fastgan" / "s0" / "evaluate" / "samples.png"
    copied = [g for g in built["result"]["grids"] if g.startswith("figures/samples_faces__fastgan")]
    assert len(copied) == 1 and (out / copied[0]).read_bytes() == src.read_bytes()
    assert (out / "figures" / "stage_costs.png").is_file()


def test_stage_costs_table_and_provenance(built):
    costs = pd.read_csv(built["out"] / "stage_costs.csv")
    cell = costs[(costs["dataset"] == "faces") & (costs["model"] == "dcgan/s0")].iloc[0]
    assert cell["train"] == pytest.approx(11.0) and cell["evaluate"] == pytest.approx(51.0)
    assert cell["total"] == pytest.approx(sum(built["stage_wall"][("faces", "dcgan", 0, s)]
                                              for s in ("train", "score", "select", "invert", "evaluate")))
    ds_row = costs[(costs["dataset"] == "faces") & (costs["model"] == "(dataset)")].iloc[0]
    assert ds_row["curate"] == 1.0 and ds_row["split"] == 0.5
    total = costs[costs["dataset"] == "TOTAL"].iloc[0]
    assert total["total"] == pytest.approx(sum(built["stage_wall"].values()) + 1 + 2 + 0.5 * 2)
    md = built["md"]
    assert "f" * 64 in md and "smoke" in md and "abc123" in md          # params sha256, profile, commit
    assert "torch-fidelity" in md and "lpips" in md
    # one line per distinct fallback, naming every stage it applied to
    line = next(ln for ln in md.splitlines() if "Inception weights unavailable: untrained extractor" in ln)
    assert "faces/fastgan/s0/evaluate" in line
    assert md.count("Inception weights unavailable: untrained extractor [") == 1
    assert re.search(r"LPIPS-vgg: untrained VGG backbone \[[^]]*faces/dcgan/s0/invert", built["html"])


def test_missing_metrics_json_is_an_error_naming_it(tree):
    p = tree["runs"] / "faces" / "dcgan" / "s0" / "evaluate" / "metrics.json"
    p.unlink()
    with pytest.raises(ReportInputError, match=re.escape(str(p)) + r".*fewgan evaluate --dataset faces --model dcgan"):
        _run(tree)


def test_missing_optional_pieces_are_noted_not_fatal(tree):
    shutil.rmtree(tree["runs"] / "faces" / "fastgan" / "s0" / "score")
    shutil.rmtree(tree["runs"] / EVIL_DATASET / "dcgan" / "s0" / "invert")
    (tree["runs"] / "faces" / "dcgan" / "s0" / "evaluate" / "samples.png").unlink()
    for m in MODELS:  # no inversion at all for one dataset: its figure is replaced by a note
        shutil.rmtree(tree["runs"] / EVIL_DATASET / m / "s0" / "invert", ignore_errors=True)
    result = _run(tree)
    out = tree["out"]
    md, html = (out / "README.md").read_text(), (out / "index.html").read_text()
    notes = result["not_available"]
    assert any("faces/fastgan/s0: FID curve not available" in n and "scores.csv missing" in n for n in notes)
    assert any("faces/dcgan/s0: samples grid not available" in n for n in notes)
    assert any(n.startswith(f"{EVIL_DATASET}: inversion curve not available") for n in notes)
    assert "faces/fastgan/s0: FID curve not available" in md and "faces/fastgan/s0: FID curve not available" in html
    # the FID figure still exists for faces (dcgan has scores); the evil dataset has no inversion figure
    assert any(Path(r).name.startswith("fid_faces") for r in result["figures"]["faces"])
    assert not any(Path(r).name.startswith("inversion_") for r in result["figures"][EVIL_DATASET])
    s = pd.read_csv(out / "summary.csv")
    assert s[s["dataset"] == EVIL_DATASET]["inversion_lpips_first"].isna().all()


def test_paper_table_can_be_left_out_and_grids_capped(tree):
    result = _run(tree, include_paper_table=False, image_grid_max=3)
    html = (tree["out"] / "index.html").read_text()
    assert '<table class="paper">' not in html and "41.05" not in html
    assert html.count("<figure><img src=\"figures/samples_") + html.count("<figure><img src=\"figures/reconstr") == 3
    assert html.count('<li><a href="figures/') == len(result["grids"]) - 3


def test_params_file_matches_schema():
    section = yaml.safe_load((Path(__file__).resolve().parents[2] / "params" / "report.yaml").read_text())
    jsonschema.validate(section, REPORT_SCHEMA)
    assert section["include_paper_table"] is True and section["image_grid_max"] == 16
    with pytest.raises(jsonschema.ValidationError, match="colour"):
        jsonschema.validate(dict(section, colour="red"), REPORT_SCHEMA)
    assert PAPER_FID_256[0] == ("Obama (100)", 41.05, 46.87, 80.20)


def _md_tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables of `text`, each as rows of cells (header first, the rule line dropped)."""
    tables, cur = [], []
    for ln in text.splitlines() + [""]:
        if ln.startswith("|"):
            cur.append([c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]])
        elif cur:
            tables.append([cur[0]] + cur[2:])
            cur = []
    return tables


def test_models_are_ranked_by_swd_without_the_standard_inception_and_say_so(built):
    s = built["summary"]
    for d, grp in s.groupby("dataset"):
        ranked = grp.sort_values("order")
        assert list(ranked["order"]) == list(range(1, len(grp) + 1))
        assert list(ranked["swd_mean_x1e3"]) == sorted(grp["swd_mean_x1e3"])  # lowest SWD first
        # one seed: nothing is separable, so every rank is the full range, and the report says why
        assert set(grp["rank"]) == {f"1–{len(grp)}"}
        assert set(grp["ranked_by"]) == {"SWD×10³ (mean over levels, vs train)"}
    assert set(s["selected_by"]) == {"swd"} and s["selection_why"].str.contains("fallback").all()
    for doc in (built["md"], built["html"]):
        assert "Models are ranked by SWD×10³ (mean over levels, vs train)" in doc
        assert "selected by SWD" in doc and "(SWD)" in doc  # the best-iteration column names the metric
    assert built["result"]["ranking"]["column"] == "swd_mean_x1e3"
    # each dataset's compact table and its every-metric table list the models best first; one seed: the rank
    # range is the same for every row, so it is said once above the table instead
    md = built["md"]
    for d in built["datasets"]:
        head = html.escape(d, quote=False) + (" (synthetic)" if d == "faces" else "")
        want = list(s[s["dataset"] == d].sort_values("order")["model"])
        compact = md.split(f"## {head}\n", 1)[1].split("### At equal compute", 1)[0]
        every = md.split("## Results", 1)[1].split(f"### {head}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        assert len(_md_tables(compact)) == 1 and len(_md_tables(every)) == 2  # pixels; Inception (EffNet: no values)
        for section in (compact, every):
            for table in _md_tables(section):
                assert [row[table[0].index("model")] for row in table[1:]] == want, (d, table)
                assert "rank" not in table[0]
            assert section.count(f"- rank: 1–{len(want)}") == len(_md_tables(section))
    # ... whatever order the rows come in
    shuffled = built["summary"].iloc[::-1].to_dict("records")
    table = _display_table(shuffled, 2)
    for d in table["dataset"].unique():
        assert list(table[table["dataset"] == d]["model"]) == ["fastgan", "dcgan"], d
    assert "Each run's snapshot" in built["md"] and "&#x27;" not in built["md"]  # markdown prose is not over-escaped
    # the inversion headline is MS-SSIM (LPIPS had no pretrained backbone); LPIPS stays in the CSV only
    assert set(s["inversion_headline"]) == {"msssim"}
    assert s["inversion_lpips_first"].notna().all()


def test_per_class_table_for_datasets_with_classes(tree):
    """A conditional run's per_class metrics become one row per class (per_class.csv, README, HTML); an
    unconditional run on the same classed dataset gets one row saying it has overall metrics only; a
    dataset without classes adds no rows (and no per_class.csv)."""
    import json

    split_summary = tree["data"] / "splits" / "faces" / "summary.json"
    split_summary.write_text(json.dumps({"n_train": 18, "n_test": 2, "classes": {
        "names": ["cat", "dog"], "index": {"cat": 0, "dog": 1},
        "counts": {"cat": {"train": 9, "test": 1}, "dog": {"train": 9, "test": 1}}}}))
    mpath = tree["runs"] / "faces" / "fastgan" / "s0" / "evaluate" / "metrics.json"
    m = json.loads(mpath.read_text())
    m["conditional"] = True
    m["per_class"] = {
        "cat": {"index": 0, "n_real_train": 9, "n_real_test": 1, "n_fake": 50, "fid_train": 61.25, "fid_test": None,
                "kid_train": 3.5, "kid_train_std": 0.5, "kid_test": None, "kid_test_std": None,
                "swd": {"mean": 12.5}, "swd_real_floor": {"mean": 4.0}, "msssim_fake": 0.3, "msssim_real": 0.25,
                "notes": ["1 test image(s) of class cat: FID/KID against test not computed (needs >= 2)"]},
        "dog": {"index": 1, "n_real_train": 9, "n_real_test": 1, "n_fake": 50, "fid_train": 71.75, "fid_test": None,
                "kid_train": 4.5, "kid_train_std": 0.5, "kid_test": None, "kid_test_std": None,
                "swd": {"mean": 13.5}, "swd_real_floor": {"mean": 4.5}, "msssim_fake": 0.31, "msssim_real": 0.26,
                "notes": []}}
    mpath.write_text(json.dumps(m))
    result = _run(tree)
    pc = pd.read_csv(tree["out"] / "per_class.csv")
    assert list(pc["class"]) == ["cat", "dog", "(all)"] and list(pc["model"]) == ["fastgan", "fastgan", "dcgan"]
    assert list(pc["fid_train"][:2]) == [61.25, 71.75] and pd.isna(pc["fid_test"][0])
    assert "unconditional generator" in pc["note"][2] and pc["conditional"].tolist() == [True, True, False]
    md = (tree["out"] / "README.md").read_text()
    html = (tree["out"] / "index.html").read_text()
    assert "### Per class" in md and "61.25" in md and "71.75" in md and "Per class</h3>" in html
    assert md.index("### Per class") < md.index("## Datasets")  # under the results table
    assert [r["class"] for r in result["per_class"]] == ["cat", "dog", "(all)"]


def test_no_per_class_output_without_classes(built):
    assert not (built["out"] / "per_class.csv").exists() and "Per class" not in built["md"]
    assert built["result"]["per_class"] == []


def test_models_are_ranked_by_the_metric_that_selected_their_snapshots():
    """With the standard Inception, `auto` ranks by FID; `swd` ranks by SWD there too (as select picked by it);
    with a fallback Inception, FID may not rank at all."""
    from fewgan.report.stage import rank_models

    def rows(standard):
        return [{"dataset": "d", "model": m, "feature_extractor_standard": standard, "fid_train": fid,
                 "kid_train_x1e3": kid, "swd_mean_x1e3": swd, "rank": None, "ranked_by": None}
                for m, fid, kid, swd in (("a", 10.0, 3.0, 90.0), ("b", 20.0, 1.0, 80.0), ("c", 30.0, 2.0, 70.0))]

    for standard, setting, order, column in ((True, "auto", "abc", "fid_train"), (True, "swd", "cba", "swd_mean_x1e3"),
                                             (True, "kid", "bca", "kid_train_x1e3"),
                                             (False, "auto", "cba", "swd_mean_x1e3")):
        rs = rows(standard)
        ranking = rank_models(rs, setting)
        assert ranking["column"] == column, (standard, setting)
        assert "".join(r["model"] for r in sorted(rs, key=lambda r: r["order"])) == order, (standard, setting)
    with pytest.raises(ValueError, match="needs the standard Inception weights"):
        rank_models(rows(False), "fid")


def test_dataset_table_shows_train_test_counts_overall_and_per_class(tree):
    summary = tree["data"] / "splits" / "faces" / "summary.json"
    summary.write_text(json.dumps({"method": "rank", "ratio": 0.9, "train": 18, "test": 2,
                                   "classes": {"counts": {"cat": {"train": 9, "test": 1}, "dog": {"train": 9, "test": 1}}}}))
    _run(tree)
    md = (tree["out"] / "README.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| faces"))
    assert "18 / 2 (rank split, ratio 0.9)" in row and "cat 9 / 1; dog 9 / 1" in row


def _section(html_text: str, anchor: str) -> str:
    """The <section id=anchor> of the page."""
    return re.search(rf'<section class="dataset" id="{re.escape(anchor)}">(.*?)</section>', html_text, re.S).group(1)


def test_each_dataset_opens_with_its_verdict_then_one_compact_table(built):
    from fewgan.report.tables import slug

    page = built["html"]
    positions = []
    for d in built["datasets"]:
        sec = _section(page, f"ds-{slug(d)}")
        positions.append(page.index(f'id="ds-{slug(d)}"'))
        # the heading, then the verdict: the headline sentence and the pairs
        m = re.match(r'\s*<h2>([^<]*)</h2>\s*<div class="verdict">\s*<p class="headline">([^<]*)</p>\s*<ul class="verdicts">',
                     sec)
        assert m, sec[:300]
        assert html.unescape(m.group(1)).startswith(d)
        assert html.unescape(m.group(2)).startswith("No verdict yet: fastgan has the best SWD×10³")  # one seed
        # then exactly one compact table before the equal-compute part, with what is the same for every row
        # said once above it
        head = sec.split("<h3>At equal compute</h3>", 1)[0]
        assert head.count("<table") == 1 and head.count('<table class="compact">') == 1
        table = re.search(r'<table class="compact">.*?</table>', head, re.S).group(0)
        same = re.search(r'<div class="same">(.*?)</div>', head, re.S).group(1)
        headers = re.findall(r'<th(?: class="key")?>(.*?)</th>', table)
        assert headers[:2] == ["model", "SWD×10³ (mean over levels, vs train) [95% interval]"]
        assert {"train s/iter", "params G / D"} <= set(headers) and "precision / recall (EffNet, train)" not in headers
        for said in ("rank</strong>: 1–2", "seeds</strong>: 1",
                     "MS-SSIM fake (diversity; lower = more diverse)</strong>: 0.2500",
                     "MS-SSIM real train images</strong>: 0.2000",
                     "held-out inversion, first → last snapshot: MS-SSIM (it 100 → 300)</strong>: 0.6000 → 0.8000"):
            assert said in same, said
        assert "0.2500 (0.2000)" not in table and "Ranked by SWD" in head.split('<div class="same">')[0]
        # cost: training FLOPs from run.json compute (fastgan 300 GFLOPs, dcgan twice as many per iteration)
        assert "training FLOPs" in headers and "<td>300 G</td>" in table and "<td>600 G</td>" in table
    assert positions == sorted(positions) and positions[-1] < page.index('id="results"')
    md = built["md"]
    assert md.index("## faces (synthetic)\n\nNo verdict yet: fastgan") < md.index("## Results")


def test_a_value_that_is_the_same_in_every_row_is_said_once():
    from fewgan.report.compact import split_constant

    df = pd.DataFrame({"model": ["a", "b", "c"], "label": ["untrained"] * 3, "fid": ["1.00", "2.00", "3.00"],
                       "effnet": ["n/a"] * 3, "pr": ["n/a / n/a"] * 3})
    table, said = split_constant(df)
    assert list(table.columns) == ["model", "fid"]
    assert said == [("label", "untrained"), ("not available for any row", "effnet, pr")]
    one = pd.DataFrame({"model": ["a"], "label": ["untrained"]})
    assert split_constant(one)[0] is one and split_constant(one)[1] == []  # one row: nothing to fold
    assert split_constant(pd.DataFrame({"model": ["a", "a"]}))[1] == []     # the key column stays


def test_provenance_is_in_collapsible_key_value_tables(tree):
    from fewgan.report.compact import flatten

    cs = tree["data"] / "curated" / "faces" / "summary.json"
    cs.write_text(json.dumps({"n_images": 20, "synthetic": True, "source": {"kind": "synthetic", "count": 40},
                              "params": {"background": [255, 255, 255]}, "notes": ["a <long> note " * 10, "two"],
                              "provenance": {"git": {"commit": "c0ffee"}, "params_sha256": "ab" * 32}}))
    _run(tree)
    page = (tree["out"] / "index.html").read_text()
    md = (tree["out"] / "README.md").read_text()
    block = re.search(r"<details><summary>faces: curated summary[^<]*</summary>\s*(<table class=\"kv\">.*?</table>)\s*"
                      r"</details>", page, re.S)
    assert block, "no <details> with the curated summary"
    rows = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", block.group(1)))
    assert rows["source.kind"] == "synthetic" and rows["params.background"] == "255, 255, 255"
    assert rows["provenance.git.commit"] == "c0ffee" and rows["provenance.params_sha256"] == "ab" * 32
    assert rows["synthetic"] == "yes" and rows["notes [2]"] == "two" and "&lt;long&gt;" in rows["notes [1]"]
    assert "<details><summary>faces: split summary" in page
    # no key=value dumps left in any table cell; the dataset table is short
    assert "n_images=20" not in page and "source=" not in page
    datasets = re.search(r'<table class="datasets">.*?</table>', page, re.S).group(0)
    assert re.findall(r'<th(?: class="key")?>(.*?)</th>', datasets) == ["dataset", "synthetic", "description", "domain", "train / test",
                                                       "per class train / test"]
    assert "<details><summary>faces: curated summary" in md and "| source.kind" in md and "</details>" in md
    # the report's own provenance, fallbacks and notes are collapsible too
    for title in ("report provenance", "fallback(s)", "not available"):
        assert re.search(rf"<details><summary>[^<]*{re.escape(title)}", page), title
    assert flatten({"a": {"b": 1, "c": None}, "e": [], "f": {}}) == [("a.b", "1"), ("a.c", "n/a"), ("e", "(none)"),
                                                                       ("f", "(none)")]


def test_figures_in_reading_order_not_for_decisions_last(built):
    from fewgan.report.tables import slug

    res = built["result"]
    for d in built["datasets"]:
        kinds = [Path(r).name.split("_")[0] for r in res["figures"][d]]
        # the ranking metric vs compute, its curve, the samples, the inversion; FID (untrained) last
        assert kinds == ["flops", "swd", "overview", "inversion", "fid"], kinds
        assert [Path(r).name.split("_")[0] for r in res["figures_not_for_decisions"][d]] == ["fid"]
        sec = _section(built["html"], f"ds-{slug(d)}")
        srcs = re.findall(r'<img src="([^"]+)"', sec)
        assert srcs == res["figures"][d]
        label = sec.index("<h4>Not for decisions</h4>")
        assert sec.index(res["figures"][d][-1]) > label > sec.index(res["figures"][d][-2])
        assert re.search(r'alt="Not for decisions \(FID here is computed without', sec)


def test_every_image_has_alt_text_and_no_link_is_broken(built):
    out, page = built["out"], built["html"]
    imgs = re.findall(r"<img [^>]*>", page)
    assert imgs and all(re.search(r'alt="[^"]+"', i) for i in imgs)
    ids = set(re.findall(r'id="([^"]+)"', page))
    targets = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert any(t.startswith("#") for t in targets) and any(t.endswith(".csv") for t in targets)
    for t in targets:
        t = html.unescape(t)
        assert not re.match(r"^[a-z]+:", t), f"not a local link: {t}"
        if t.startswith("#"):
            assert t[1:] in ids, f"broken anchor {t}"
        else:
            assert (out / t).is_file(), f"broken link {t}"
    for t in re.findall(r"\]\(([^)]+)\)", built["md"]):  # README links and images
        assert (out / t).is_file(), f"README: broken link {t}"
