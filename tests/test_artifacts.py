"""The committed deliverables agree with each other and with a recount from the saved predictions.

Recounts here are written independently of the package's own counting where it matters (McNemar,
fixes and breaks, the stability verdicts), so that a wrong number or a wrong word in the report fails.
"""

import hashlib
import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from PIL import Image
from pypdf import PdfReader

from mnist_transfer import data, evaluation, mnist_style, paths, report, results, stats, tuning, workbook

RESULT_FILES = {
    "baseline": ["mnist_test", "own_test"],
    "finetune_last_layer": ["own_test"],
    "finetune_n_layers": ["own_test"],
}
PREDICTIONS = {
    ("baseline", "mnist_test"): "pretrained_mnist_test",
    ("baseline", "own_test"): "pretrained_own_test",
    ("finetune_last_layer", "own_test"): "finetune_last_layer_own_test",
    ("finetune_n_layers", "own_test"): "finetune_n_layers_own_test",
}


@pytest.fixture(scope="module")
def manifest():
    return pd.read_csv(paths.MANIFEST)


def _is_sample(manifest) -> bool:
    """The dataset was cut from the shipped sample sheet (tests about the sample skip for any other dataset)."""
    return report.sample_data(manifest) is not None


NOT_THE_SAMPLE = "the dataset is not the shipped sample sheet's (a student's own run): this checks the sample only"


def test_dataset_split_is_the_same_for_every_digit_and_matches_the_manifest(manifest):
    """8/2/2 per digit (or the split chosen in notebook 01), every further copy held out; files as listed."""
    counts = manifest.pivot_table(index="split", columns="label", values="file", aggfunc="count").fillna(0)
    for split in ("train", "val", "test"):
        assert counts.loc[split].nunique() == 1 and counts.loc[split].iloc[0] >= 1, split
    assert set(counts.index) <= {"train", "val", "test", "heldout"}
    if _is_sample(manifest):
        assert counts.loc[["train", "val", "test"]].iloc[:, 0].tolist() == [8, 2, 2] and "heldout" not in counts.index
    on_disk = sorted(
        f"{folder.name}/{p.relative_to(folder).as_posix()}" for folder in paths.ALL_SPLIT_DIRS.values()
        for p in (folder.rglob("*") if folder.exists() else ()) if p.is_file()
    )
    assert on_disk == sorted(manifest.file)
    for row in manifest.itertuples():
        path = paths.PROJECT_ROOT / row.file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
        assert path.parent.name == str(row.label)
        image = np.asarray(Image.open(path))
        assert image.dtype == np.uint8 and image.shape == (28, 28)
        assert mnist_style.mnist_style_problems(image) == [], row.file


def test_no_image_is_in_two_splits(manifest):
    assert not manifest.sha256.duplicated().any()
    pixels = {}
    for row in manifest.itertuples():
        key = np.asarray(Image.open(paths.PROJECT_ROOT / row.file)).tobytes()
        assert key not in pixels, (row.file, pixels.get(key))
        pixels[key] = row.file


def test_dataset_labels_agree_with_the_sample_sheet_ground_truth(manifest):
    if not _is_sample(manifest):
        pytest.skip(NOT_THE_SAMPLE)
    truth = pd.read_csv(paths.SHEETS_DIR / "sample_sheet_truth.csv").set_index(["row", "col"]).label
    for row in manifest.itertuples():
        assert truth[(row.row, row.col)] == row.label, row.file


def test_checkpoint_json_agrees_with_a_fresh_evaluation(pretrained):
    metrics = json.loads(paths.PRETRAINED_METRICS.read_text(encoding="utf-8"))
    x, y = data.load_mnist("test")
    correct = int((evaluation.predict(pretrained, x).argmax(1) == y).sum())
    assert correct == metrics["test_correct"]
    assert metrics["test_accuracy"] == correct / 10000


@pytest.mark.parametrize("name,key", [(n, k) for n, keys in RESULT_FILES.items() for k in keys])
def test_results_equal_a_recount_of_the_saved_predictions(name, key):
    record = results.load_results(name)[key]
    frame = results.load_predictions(PREDICTIONS[(name, key)])
    assert (frame.pred == frame.true).tolist() == frame.correct.tolist()
    assert record["correct"] == int((frame.pred == frame.true).sum())
    assert record["total"] == len(frame)
    assert record["accuracy"] == record["correct"] / record["total"]
    assert (record["ci_low"], record["ci_high"]) == pytest.approx(stats.wilson_interval(record["correct"], record["total"]))
    assert record["confusion"] == stats.confusion_matrix(frame.true, frame.pred).tolist()


def test_own_test_predictions_cover_exactly_the_test_folder(manifest):
    test_files = sorted(manifest[manifest.split == "test"].file)
    for key in ("pretrained_own_test", "finetune_last_layer_own_test", "finetune_n_layers_own_test"):
        assert sorted(results.load_predictions(key).file) == test_files


def test_test_set_was_evaluated_once_per_final_model():
    assert results.load_results("baseline")["test_evaluations"] == ["pre-trained"]
    assert results.load_results("finetune_last_layer")["test_evaluations"] == ["last layer"]
    many = results.load_results("finetune_n_layers")
    assert many["test_evaluations"] == [f"last {many['chosen']['n_last']} layers"]
    assert many["chosen"]["n_last"] >= 2


@pytest.mark.parametrize("name", results.EXPERIMENTS)
def test_chosen_configurations_are_the_validation_winners(name):
    experiment = results.load_experiment(name)
    ranking, columns = experiment["ranking"], tuning.CONFIG_COLUMNS
    assert tuning.rank_configurations(experiment["runs"])[columns].equals(ranking[columns])
    assert {k: experiment["chosen"][k] for k in columns} == ranking.iloc[0][columns].to_dict()
    assert (ranking.seeds == len(experiment["seeds"])).all()  # every configuration ran with every seed


@pytest.fixture(scope="module")
def everything():
    return results.load_all()


def test_workbook_sheets_equal_the_results_files(everything):
    book = load_workbook(paths.WORKBOOK, read_only=True)
    expected = workbook.workbook_sheets(everything)
    assert book.sheetnames == list(expected)
    for name, frame in expected.items():
        rows = list(book[name].iter_rows(values_only=True))
        assert list(rows[0]) == [str(c) for c in frame.columns], name
        assert len(rows) - 1 == len(frame), name
        for got, want in zip(rows[1:], frame.itertuples(index=False)):
            for g, w in zip(got, want):
                if isinstance(w, (float, np.floating)) and w != w:
                    assert g is None, name  # NaN is written as an empty cell
                elif isinstance(w, (float, np.floating)):
                    assert g == pytest.approx(float(w)), name
                else:
                    assert str(g) == str(w), name
    first = dict(zip(*[list(r) for r in list(book["Results"].iter_rows(values_only=True))[:2]]))
    recount = results.load_predictions("pretrained_mnist_test")
    assert first["Correct"] == int(recount.correct.sum()) and first["Images"] == len(recount)


def _pdf_text_and_figure_page(pdf):
    pages = PdfReader(pdf).pages
    # each page ends with its number: drop it, so a sentence running across pages stays whole
    texts = [re.sub(r"\n\s*\d+\s*$", "", p.extract_text()) for p in pages]
    figures_at = next(i for i, t in enumerate(texts) if "Figures" in t.splitlines()[:3])
    return "\n".join(texts[:figures_at]), figures_at


@pytest.fixture(scope="module")
def report_text():
    text, figures_at = _pdf_text_and_figure_page(paths.REPORT_PDF)
    # typst sets an apostrophe as ’: read back as the plain one the tests write
    return re.sub(r"\s+", " ", re.sub(r"-\n", "-", text)).replace("’", "'"), figures_at


def test_report_has_at_most_two_text_pages_and_the_four_accuracies(report_text, everything):
    text, figures_at = report_text
    assert figures_at <= 2
    for e in results.four_evaluations(everything):
        assert evaluation.format_accuracy(e) in text


def test_report_reads_as_prose_without_template_artefacts(report_text):
    text, _ = report_text
    assert "(s)" not in text
    assert not re.search(r"\b(a|an|the) (a|an|the)\b", text, re.IGNORECASE), "doubled article"
    words = [w for w in text.split() if not re.search(r"/|\.py|\.ipynb|\.typ", w)]
    assert not [w for w in words if "_" in w], "a raw key or identifier in the running text"
    assert not re.search(r"(?<![\d,.])\d{5,}", text), "a number of 10,000 or more without separators"
    assert not re.search(r"\b(None|nan|NaN|True|False|none)\b|[{}]", text), "a Python value leaked into the text"
    assert "(ours)" not in text and "(28x28)" not in text, "a dictionary key printed verbatim"


def _mcnemar(a, b):
    """Exact McNemar p-value, written out here so the test does not trust stats.mcnemar_exact."""
    x, y = int((a & ~b).sum()), int((~a & b).sum())
    n = x + y
    return 1.0 if n == 0 else min(1.0, sum(math.comb(n, i) for i in range(min(x, y) + 1)) * 2 / 2**n)


def test_report_claims_about_the_test_images_agree_with_the_predictions(report_text, everything):
    text, _ = report_text
    pre = everything["baseline"]["predictions"].correct.astype(bool).to_numpy()
    n = everything["many"]["chosen"]["n_last"]
    wrong = int((~pre).sum())
    assert f"misreads {wrong} of the {len(pre)} own test images" in text or (
        wrong == 0 and "already reads every own test image correctly" in text)
    for key, name in (("last", "the last layer"), (f"many", f"the last {n} layers")):
        tuned = everything[key]["predictions"].correct.astype(bool).to_numpy()
        fixed, broken = int((tuned & ~pre).sum()), int((~tuned & pre).sum())
        match = re.search(rf"Fine-tuning {name} (.*?)\((\d+) against (\d+) of (\d+)(?:, exact McNemar p = ([\d.]+))?\)",
                          text)
        assert match, f"no sentence on fine-tuning {name}"
        claim, a, b, total, p = match.groups()
        assert (int(a), int(b), int(total)) == (int(tuned.sum()), int(pre.sum()), len(pre))
        if fixed + broken:
            assert p is not None and float(p) == pytest.approx(_mcnemar(tuned, pre), abs=0.005)
        if wrong == 1:
            assert ("corrects that mistake" in claim) == (fixed == 1)
        elif wrong > 1:
            assert (f"corrects all {wrong} mistakes" in claim or f"corrects {fixed} of the {wrong} mistakes" in claim)
        if broken == 0:
            assert "breaks no image" in claim
        else:
            assert re.search(rf"breaks {broken} images? the pre-trained", claim)
    last = everything["last"]["predictions"].correct.astype(bool).to_numpy()
    many = everything["many"]["predictions"].correct.astype(bool).to_numpy()
    same = "give the same answer on every test image" in text
    assert same == bool((everything["last"]["predictions"].pred == everything["many"]["predictions"].pred).all())
    if not same:
        assert f"disagree on {int((last != many).sum())} test image" in text


def test_report_stability_figures_agree_with_the_stability_results(report_text, everything):
    text, _ = report_text
    last, many = everything["last"]["stability"], everything["many"]["stability"]
    n = everything["many"]["chosen"]["n_last"]
    assert f"{100 * last['seed_std']:.1f} points for the last layer" in text
    assert f"{100 * many['seed_std']:.1f} points for the last {n} layers" in text
    single = len(last["lrs_tried"]) < 2 or len(many["lrs_tried"]) < 2
    assert ("compare learning-rate sensitivity: with every other setting as chosen, the grid of one strategy tried a "
            "single learning rate" in text) == single


def _pct(x, digits=1):
    return f"{100 * x:.{digits}f}%"


def test_report_sweep_and_forgetting_claims_agree_with_the_saved_runs(report_text, everything):
    """Issue 18: the stable ranges, the accuracies at the largest rate and per depth, and what MNIST the final
    models keep, recounted from the sweep's per-run rows and the results files."""
    from mnist_transfer import sweeps

    text, _ = report_text
    n = everything["many"]["chosen"]["n_last"]
    forget = {k: everything[k]["mnist_test"]["accuracy"] for k in ("last", "many")}
    assert (f"the last-layer model reads {_pct(forget['last'], 2)} and the last-{n} model {_pct(forget['many'], 2)}"
            in text)
    assert f"reads {_pct(everything['baseline']['mnist_test']['accuracy'], 2)} of the 10,000 MNIST test images" in text
    study = everything["study"]["study"] if "study" in (everything["study"] or {}) else None
    if study is not None and "mnist_correct" in study:  # the writer study's final models, recounted per writer
        acc = (study.mnist_correct / study.mnist_total).groupby([study.writer, study.model]).mean().unstack()
        ci = {m: stats.mean_interval(acc[m].to_numpy(), bounds=(0, 1)) for m in acc}
        change = {m: stats.mean_interval((acc[m] - acc["pre-trained"]).to_numpy()) for m in ("last layer", "last n layers")}

        def ci_text(x):
            return f"{100 * x['ci_low']:.1f} to {100 * x['ci_high']:.1f}"

        def change_text(x):
            return f"{'+' if x['mean'] > 0 else ''}{100 * x['mean']:.2f} points ({ci_text(x)})"

        assert (f"read {_pct(ci['last layer']['mean'], 2)} ({ci_text(ci['last layer'])}) of the MNIST test images with "
                f"the last layer and {_pct(ci['last n layers']['mean'], 2)} ({ci_text(ci['last n layers'])}) with the last "
                f"{everything['study']['summary']['grids']['last n layers']['n_last_values'][0]} layers, against {_pct(ci['pre-trained']['mean'], 2)} before fine-tuning: a change of "
                f"{change_text(change['last layer'])} and {change_text(change['last n layers'])}") in text
        assert (study.mnist_total == 10000).all()
    sweep = everything["sweep"]
    if sweep is None:
        assert "learning-rate sweep on held-out digits" not in text
        return
    assert sweep["summary"]["within"] == 0.01 and "Within one point of its best mean held-out accuracy" in text
    table = sweeps.lr_table(sweep["runs"])
    ranges = sweeps.stable_ranges(table).set_index("n_last")
    depth = sweeps.depth_table(sweep["runs"]).set_index("n_last")
    top = table[table.lr == table.lr.max()].set_index("n_last").heldout_acc

    def span(k):
        r = ranges.loc[k]
        return f"only at {r.best_lr:g}" if r.steps == 1 else f"from {r.lr_low:g} to {r.lr_high:g}"

    assert f"the last layer stays {span(1)}" in text and f"the whole network (best {_pct(ranges.loc[5, 'best_heldout_acc'])}) {span(5)}" in text
    assert f"the last {n} stages (best {_pct(ranges.loc[n, 'best_heldout_acc'])}) {span(n)}" in text
    d1, dn = ranges.loc[1, "decades"], ranges.loc[n, "decades"]
    verdict = ("The classifier alone tolerates the wider range" if d1 > dn else
               f"Here the last {n} stages tolerate the wider range" if d1 < dn else "Both tolerate ranges of the same width")
    assert verdict in text
    assert (f"the last layer still reads {_pct(top[1])} of the held-out digits, the last {n} stages {_pct(top[n])} "
            f"and the whole network {_pct(top[5])}") in text
    late = sweeps.oscillation(sweep["runs"]).set_index(["n_last", "lr"]).late_range
    assert (f"moves by {100 * late[(1, 0.1)]:.1f} points on average with the last layer, {100 * late[(n, 0.1)]:.1f} "
            f"points with the last {n} stages and {100 * late[(5, 0.1)]:.1f} points with the whole network") in text
    def with_ci(k, mean, low, high):
        row = depth.loc[k]
        assert 0 <= row[low] <= row[mean] <= row[high] <= 1
        return f"{_pct(row[mean])} ({100 * row[low]:.1f} to {100 * row[high]:.1f})"

    listing = [with_ci(k, "heldout_acc", "ci_low", "ci_high") for k in range(1, 6)]
    assert f"n = 1 to 5 is {', '.join(listing[:-1])} and {listing[-1]} (95% intervals across writers)" in text
    mnist = [with_ci(k, "mnist_acc", "mnist_ci_low", "mnist_ci_high") for k in range(1, 6)]
    assert f"read {', '.join(mnist[:-1])} and {mnist[-1]} of 2,000 MNIST test images" in text
    # each writer's own stable range, recounted here from the per-run rows (not through sweeps.writer_ranges)
    final = sweeps.final_epoch(sweep["runs"])
    curve = final.groupby(["writer", "n_last", "lr"]).heldout_acc.mean()
    widths = {}
    for (writer, k), c in curve.groupby(level=["writer", "n_last"]):
        acc = c.droplevel(["writer", "n_last"]).sort_index()
        best = acc.idxmax()
        ok = (acc >= acc.max() - 0.01 - 1e-12).to_numpy()
        lo = hi = list(acc.index).index(best)
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        while hi < len(ok) - 1 and ok[hi + 1]:
            hi += 1
        widths[writer, k] = float(np.log10(acc.index[hi] / acc.index[lo]))
    widths = pd.Series(widths).unstack()

    def width(k):
        w = stats.mean_interval(widths[k].to_numpy(), bounds=(0, np.log10(final.lr.max() / final.lr.min())))
        return f"{w['mean']:.1f} ({w['ci_low']:.1f} to {w['ci_high']:.1f})"

    assert (f"ranges {width(1)} decades wide on average for the last layer, {width(n)} for the last {n} stages and "
            f"{width(5)} for the whole network (95% intervals across writers)") in text
    wider, narrower = int((widths[n] > widths[1] + 1e-9).sum()), int((widths[n] < widths[1] - 1e-9).sum())
    same = len(widths) - wider - narrower
    assert (f"range is wider than the last layer's for {wider} of the {len(widths)} writers, narrower for {narrower} "
            f"and as wide for {same}") in text
    m = [depth.loc[k, "mnist_acc"] for k in range(1, 6)]
    verdicts = {"the more of the network moves, the more of MNIST it forgets": all(a >= b for a, b in zip(m, m[1:])),
                "every depth beyond the classifier forgets more of MNIST than the classifier alone": False,
                "here forgetting does not grow with the depth fine-tuned": False}
    if not any(verdicts.values()):
        verdicts["every depth beyond the classifier forgets more of MNIST than the classifier alone"] = all(x < m[0] for x in m[1:])
    if not any(verdicts.values()):
        verdicts["here forgetting does not grow with the depth fine-tuned"] = True
    for sentence, true in verdicts.items():
        assert (sentence in text) == true, sentence
    if study is not None and "mnist_correct" in study:
        grid = everything["study"]["summary"]["grids"]["last n layers"]
        top, sn = max(grid["lrs"]), grid["n_last_values"][0]
        at = table[(table.n_last == sn) & (table.lr == top)].mnist_acc
        said = "How much is forgotten follows the learning rate" in text
        assert said == (len(at) == 1 and depth.loc[sn, "lr_chosen_on_val"] != top)
        if said:
            assert (f"stops at {top:g}, where the sweep's models read {_pct(at.iloc[0])} of MNIST, against "
                    f"{_pct(depth.loc[sn, 'mnist_acc'])} at the rate validation prefers in the sweep, "
                    f"{depth.loc[sn, 'lr_chosen_on_val']:g}") in text


def test_report_claims_about_tuning_agree_with_the_grids(report_text, everything):
    text, _ = report_text
    curves = [everything[k]["curves"] for k in ("last", "many")]
    firsts = [run.loc[run.train_acc >= 1, "epoch"].min() for frame in curves
              for _, run in frame.groupby(tuning.RUN_KEYS + ["seed"])]
    reached = [f for f in firsts if f == f]  # drop NaN: runs that never fit
    assert f"{len(reached)} of the {len(firsts)} tuning runs reach 100% training accuracy" in text
    perfect = {k: int((everything[k]["ranking"].val_acc_mean == 1).sum()) for k in ("last", "many")}
    configs = {k: len(everything[k]["ranking"]) for k in ("last", "many")}
    assert f"{perfect['last']} of {configs['last']} last-layer and {perfect['many']} of {configs['many']} n-layer" in text
    saturated = perfect == configs
    assert ("Validation accuracy is therefore saturated" in text) == saturated
    meets = everything["pretrained"]["test_accuracy"] >= report.ACCURACY_TARGET
    assert ("short of the" in text) == (not meets)


def test_regenerating_the_report_updates_its_numbers(tmp_path):
    """Change one saved prediction: the rebuilt PDF must show the new accuracy and the new claims."""
    results_dir = tmp_path / "results"
    shutil.copytree(paths.RESULTS_DIR, results_dir)
    frame = results.load_predictions("pretrained_own_test", results_dir)
    old = evaluation.evaluation_record("pre-trained CNN", "own test set", frame)
    frame.loc[0, "pred"] = (frame.loc[0, "true"] + 1) % 10 if frame.loc[0, "correct"] else frame.loc[0, "true"]
    frame["correct"] = frame.pred == frame.true
    results.save_predictions("pretrained_own_test", frame, results_dir)
    baseline = results.load_results("baseline", results_dir)
    baseline["own_test"] = evaluation.evaluation_record("pre-trained CNN", "own test set", frame)
    results.save_results("baseline", baseline, results_dir)
    pdf = report.build_report(tmp_path / "report.pdf", results.load_all(results_dir),
                              data_file=tmp_path / "report_data.json")
    text, _ = _pdf_text_and_figure_page(pdf)
    text = re.sub(r"\s+", " ", re.sub(r"-\n", "-", text))
    assert evaluation.format_accuracy(baseline["own_test"]) in text
    assert evaluation.format_accuracy(old) not in text.split("(3)")[0].split("(2)")[1]
    assert f"misreads {int((~frame.correct).sum())} of the 20 own test images" in text


def test_readme_quotes_the_full_sweeps_measured_time(everything):
    sweep = everything["sweep"]
    if sweep is None:
        pytest.skip("no committed full sweep")
    readme = (paths.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"runs and saves all of it (two writers at a time): {round(sweep['summary']['seconds'])} s" in readme


def test_readme_quotes_the_measured_pretraining_figures():
    metrics = json.loads(paths.PRETRAINED_METRICS.read_text(encoding="utf-8"))
    readme = (paths.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{100 * metrics['test_accuracy']:.2f}% on the 10,000 MNIST test images" in readme
    assert f"after {round(metrics['train_seconds'])} s of training" in readme


def test_readme_quotes_the_sample_writer_as_measured(everything):
    from mnist_transfer import heldout

    found = heldout.sample_writer()
    if found is None or not everything["study"]:
        pytest.skip("no UNIPEN sample writer or no study")
    if not _is_sample(everything["manifest"]):
        pytest.skip(NOT_THE_SAMPLE + " (the README quotes the sample's held-out figures)")
    readme = re.sub(r"\s+", " ", (paths.PROJECT_ROOT / "README.md").read_text(encoding="utf-8").replace("> ", ""))
    row = everything["study"]["writers"].set_index("writer").loc[found[0]]
    assert f"writer {found[0]}" in readme
    assert f"({row.correct} of {row.digits} digits" in readme
    assert f"other {everything['baseline']['heldout']['total']} digits, none on the sheet" in readme


NOTEBOOKS = sorted(paths.CODE_DIR.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_shows_every_figure(notebook):
    """Every executed cell that calls plt.show() carries an image: a grader reads results without running."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    showing = [c for c in cells if c["cell_type"] == "code" and "plt.show()" in "".join(c["source"])]
    for cell in showing:
        assert cell.get("execution_count"), f"{notebook.name}: a plotting cell was never executed"
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        said = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
        if "has no sheet to annotate" in said:
            continue  # notebook 01 on a folder of cut digits: no sheet, and the cell says so
        assert images, f"{notebook.name}: cell calling plt.show() has no image output:\n{''.join(cell['source'])[:200]}"


def test_notebooks_stay_small():
    sizes = {nb.name: nb.stat().st_size for nb in NOTEBOOKS}
    assert sum(sizes.values()) < 6_000_000, sizes


# --------------------------------------------------------------------------- held-out digits and the writer study


def _heldout_available(everything):
    return bool(everything["baseline"].get("heldout"))


def _whose_heldout(everything):
    return everything["baseline"]["heldout"].get("whose", "sample") if _heldout_available(everything) else None


def test_heldout_digits_are_exactly_the_writers_digits_not_on_the_sheet(everything):
    from mnist_transfer import handwriting, heldout

    if _whose_heldout(everything) != "sample":
        pytest.skip("the dataset was not cut from the shipped sample sheet")
    writer, on_sheet = heldout.sample_writer()
    everyone = {d.index for d in handwriting.load_writers()[writer]}
    for key in ("baseline", "last", "many"):
        files = everything[key]["heldout_predictions"].file
        indices = {int(f.split("#")[1]) for f in files}
        assert all(f.startswith(f"{writer}#") for f in files)
        assert indices == everyone - set(on_sheet) and not indices & set(on_sheet)
        record = everything[key]["heldout"]
        frame = everything[key]["heldout_predictions"]
        assert record["correct"] == int((frame.pred == frame.true).sum()) and record["total"] == len(frame)


def test_own_heldout_digits_are_exactly_the_extras_in_the_manifest(everything, manifest):
    """A student's copies beyond the split: every one evaluated once per final model, nothing else."""
    extras = sorted(manifest[manifest.split == "heldout"].file)
    if _whose_heldout(everything) != "own":
        assert not extras, "extras in the manifest but no evaluation of them"
        pytest.skip("no held-out digits of the writer's own (every digit written exactly as often as the split takes)")
    for key in ("baseline", "last", "many"):
        frame = everything[key]["heldout_predictions"]
        assert sorted(frame.file) == extras, key
        record = everything[key]["heldout"]
        assert record["correct"] == int((frame.pred == frame.true).sum()) and record["total"] == len(frame)
        labels = manifest.set_index("file").label
        assert (frame.true.to_numpy() == labels.loc[frame.file].to_numpy()).all()


def test_report_says_whether_there_are_heldout_digits_and_whose(report_text, everything):
    text, _ = report_text
    whose = _whose_heldout(everything)
    assert ("No held-out digits." in text) == (whose is None)
    assert ("Held-out digits of the writer's own." in text) == (whose == "own")
    assert ("The same writer's other digits." in text) == (whose == "sample")


def test_report_dataset_section_describes_what_was_given(report_text, everything, manifest):
    text, _ = report_text
    section = text.split("2. The pre-trained model")[0]
    facts = report.dataset_data(manifest)
    assert not any(f"{s}" in section for s in manifest.source if "/" in s), "a file name of a digit folder listed"
    if _is_sample(manifest):
        assert "The sample sheet is" in section
    else:
        assert "sample" not in section and "W01" not in section
    if facts["origin"] == "folder":
        assert f"folder of {facts['images']:,} already-cut images" in section and "finds the page" not in section
    else:
        assert "finds the page" in section
    split = "/".join(map(str, facts["split"]))
    assert f"seeded, {split} (training/validation/test" in section
    assert ("chosen in notebook 01 instead of the default 8/2/2" in section) == (split != "8/2/2")


def test_report_heldout_claims_agree_with_the_predictions(report_text, everything):
    if not _heldout_available(everything):
        pytest.skip("no held-out digits")
    text, _ = report_text
    pred = {k: everything[k]["heldout_predictions"].correct.astype(bool).to_numpy() for k in ("baseline", "last", "many")}
    for key in pred:
        assert evaluation.format_accuracy(everything[key]["heldout"]) in text
    for a, b, label in (("last", "baseline", "digits fixed"), ("many", "baseline", "fixed")):
        fixed, broken = int((pred[a] & ~pred[b]).sum()), int((~pred[a] & pred[b]).sum())
        label = label.replace("digits", "digit") if fixed == 1 else label
        assert f"{fixed} {label}, {broken} broken" in text
    p = _mcnemar(pred["many"], pred["last"])
    shown = re.search(r"only the last layer, (p < 0\.001|p = [\d.]+)\)", text).group(1)
    assert shown == ("p < 0.001" if p < 0.001 else f"p = {p:.3f}")


def _t_interval(values):
    """Mean and 95% Student-t interval, with t from a table (df 1-12), independent of writer_study."""
    t95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
           11: 2.201, 12: 2.179}
    values = np.asarray(values, float)
    half = t95[len(values) - 1] * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean(), values.mean() - half, values.mean() + half


@pytest.fixture(scope="module")
def study(everything):
    if not everything["study"]:
        pytest.skip("notebook 05 has not run")
    return everything["study"]


def test_writer_study_table_recounts_from_its_predictions(study):
    table, pred = study["study"], study["predictions"]
    for row in table.itertuples():
        mine = pred[(pred.writer == row.writer) & (pred.split_seed == row.split_seed) & (pred.model == row.model)]
        for name, prefix in (("test", "own_test"), ("heldout", "heldout")):
            part = mine[mine.set == name]
            assert getattr(row, f"{prefix}_total") == len(part)
            assert getattr(row, f"{prefix}_correct") == int((part.pred == part.true).sum())
    assert set(table.columns) >= {"writer", "split_seed", "model", "hyperparameters", "own_test_correct",
                                  "own_test_total", "heldout_correct", "heldout_total"}


def test_writer_study_never_trains_or_selects_on_test_or_heldout_digits(study):
    splits, pred = study["splits"], study["predictions"]
    for (writer, seed), part in splits.groupby(["writer", "split_seed"]):
        used = set(part[part.split.isin(["train", "val"])]["index"])
        judged = set(part[part.split.isin(["test", "heldout"])]["index"])
        assert not used & judged
        counts = part[part.split != "heldout"].groupby(["split", "label"]).size()
        assert set(counts.loc["train"]) == {8} and set(counts.loc["val"]) == {2} and set(counts.loc["test"]) == {2}
        scored = pred[(pred.writer == writer) & (pred.split_seed == seed)]
        assert set(scored["index"]) == judged  # predictions exist only for test and held-out digits


def test_report_study_claims_agree_with_the_study_table(report_text, study):
    text, _ = report_text
    table = study["study"]
    acc = table.assign(acc=table.heldout_correct / table.heldout_total).pivot_table(
        index=["writer", "split_seed"], columns="model", values="acc")
    per_writer = acc.groupby(level="writer").mean()
    for a, b in (("last layer", "pre-trained"), ("last n layers", "pre-trained"), ("last n layers", "last layer")):
        diff = per_writer[a] - per_writer[b]
        mean, low, high = _t_interval(diff)
        sign = "+" if mean > 0 else ""
        assert f"{sign}{100 * mean:.1f} points (95% CI {100 * low:.1f} to {100 * high:.1f})" in text, (a, b)
        tally = f"better for {(diff > 0).sum()}, worse for {(diff < 0).sum()}"
        assert tally in text, (a, b, tally)
    diff = per_writer["last n layers"] - per_writer["last layer"]
    _, low, high = _t_interval(diff)
    assert (f"{len(per_writer)} writers cannot establish a difference" in text) == (low <= 0 <= high)
    spread = acc.groupby(level="writer").std(ddof=1).mean()
    assert f"varies by {100 * spread['last layer']:.2f} points with the last layer" in text
    deeper_less = spread["last n layers"] < spread["last layer"]
    assert ("the deeper fine-tuning varied less" in text) == deeper_less
    assert ("the classifier alone varied less" in text) == (spread["last n layers"] > spread["last layer"])


def test_the_sample_writer_is_the_one_the_pretrained_model_reads_worst(study, everything):
    from mnist_transfer import heldout

    found = heldout.sample_writer()
    if found is None:
        pytest.skip("the sample sheet is not a UNIPEN writer's")
    writers = study["writers"]
    assert writers.loc[writers.accuracy.idxmin(), "writer"] == found[0]
    assert not writers.set_index("writer").loc[found[0], "perfect"]


def test_committed_report_is_a_build_of_the_current_source_and_results(tmp_path):
    """Editing report.typ or a results file without rebuilding the PDF fails here."""
    data = results.to_json(report.report_data()) + "\n"
    assert (paths.REPORT_DIR / "report_data.json").read_text(encoding="utf-8") == data
    pdf = report.build_report(tmp_path / "report.pdf", data_file=tmp_path / "report_data.json")
    assert [p.extract_text() for p in PdfReader(pdf).pages] == [p.extract_text() for p in PdfReader(paths.REPORT_PDF).pages]


def test_report_numbers_on_writers_and_selection_recount(report_text, study, everything):
    text, _ = report_text
    writers = study["writers"].set_index("writer")
    worst = writers.accuracy.idxmin()
    row = writers.loc[worst]
    sample = _is_sample(everything["manifest"])  # why this writer is said only where the data is the sample
    assert (f"{row.correct} of {row.digits} of their digits ({100 * row.accuracy:.1f}%)" in text) == sample
    assert (f"only {100 * row.worst_digit_recall:.0f}% of their {row.worst_digit}s" in text) == sample
    perfect = sorted(writers.index[writers.perfect.astype(bool)])
    assert (" and ".join(perfect) in text) == sample
    table = study["study"]
    held = table[table.model == "pre-trained"].groupby("writer").heldout_total.first()
    assert f"{held.min()} to {held.max()} held-out digits" in text
    acc = table.assign(acc=table.heldout_correct / table.heldout_total).pivot_table(
        index=["writer", "split_seed"], columns="model", values="acc")
    per_writer = acc.groupby(level="writer").mean()
    assert (f"held-out accuracy is {100 * per_writer['pre-trained'].mean():.2f}% for the pre-trained model, "
            f"{100 * per_writer['last layer'].mean():.2f}% for the last layer") in text
    for a in ("last layer", "last n layers"):
        diff = per_writer[a] - per_writer["pre-trained"]
        better, worse = int((diff > 0).sum()), int((diff < 0).sum())
        p = min(1.0, 2 * sum(math.comb(better + worse, i) for i in range(min(better, worse) + 1)) / 2 ** (better + worse))
        assert f"sign test p = {p:.3f}" in text
        sign = "+" if diff.median() > 0 else ""  # signed-points: "+" only above zero
        assert f"{sign}{100 * diff.median():.1f} points with the {'last layer' if a == 'last layer' else 'last'}" in text
    spread = acc.groupby(level="writer").std(ddof=1).mean()
    assert f"The pre-trained model, which is not trained at all, varies by {100 * spread['pre-trained']:.2f} points" in text


@pytest.mark.parametrize("key", ["last", "many"])
def test_cost_of_the_choice_recounts_and_its_chosen_row_is_the_final_model(everything, report_text, key):
    experiment = everything[key]
    if "after_selection" not in experiment:
        pytest.skip("no held-out digits: the cost of the choice is not measured")
    table, ranking = experiment["after_selection"], experiment["ranking"]
    columns = tuning.CONFIG_COLUMNS
    assert table[columns].equals(ranking[columns])  # every configuration of the grid, in the ranking's order
    assert table.heldout_correct.iloc[0] == experiment["heldout"]["correct"]  # the choice is the final model
    acc = table.heldout_correct / table.heldout_total
    tied = table.val_correct_mean == table.val_correct_mean.iloc[0]
    text, _ = report_text
    if key == "last":
        assert f"{tied.sum()} of the {len(table)} last-layer configurations tied with the chosen one" in text
    else:
        assert f"{tied.sum()} of {len(table)} tied, ranging from {100 * acc[tied].min():.2f}%" in text
    assert f"gives up {100 * (acc.max() - acc.iloc[0]):.2f} points" in text
