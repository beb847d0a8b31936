"""The study over every writer: splits, no leak into selection, recounts, summary, selection cost."""

import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from mnist_transfer import data as data_mod
from mnist_transfer import evaluation, handwriting, plots, stats, training
from mnist_transfer import writer_study as ws

TINY = {
    "last layer": ws.Grid((1,), (1e-2,), (16,), (5, 10), (0,)),
    "last n layers": ws.Grid((2,), (1e-3, 3e-3), (16,), (3, 5), (0,)),
}
WRITERS = ("W05", "W10")  # both read imperfectly by the pre-trained model


class Spy:
    """Records, in call order, each protocol's split and the data handed to training and selection."""

    def __init__(self, mp):
        self.events = []
        for name in ("draw_split", "select", "train_run", "_heldout_scores"):
            mp.setattr(ws, name, self._wrap(name, getattr(ws, name)))

    def _wrap(self, name, original):
        def spy(*args, **kwargs):
            if name == "draw_split":
                self.events.append(("split", args[1], args[2]))
            elif name == "_heldout_scores":
                self.events.append(("heldout",))
            else:
                train, val = args[1:3] if name == "select" else args[2:4]
                self.events.append((name, set(train.index), None if val is None else set(val.index)))
            return original(*args, **kwargs)

        return spy


@pytest.fixture(scope="module")
def tiny(pretrained):
    with pytest.MonkeyPatch.context() as mp:
        spy = Spy(mp)
        start = time.perf_counter()
        out = ws.run_study(writers=WRITERS, split_seeds=(0,), grids=TINY, pretrained=pretrained, progress=False,
                           mnist_images=500)
        out["wall"] = time.perf_counter() - start
    out["events"] = spy.events
    return out


def _indices(splits, writer, seed, name):
    s = splits[(splits.writer == writer) & (splits.split_seed == seed)]
    return set(s.loc[s.split == name, "index"])


# --------------------------------------------------------------------------- splits


@pytest.mark.parametrize("writer", ["W01", "W10"])
def test_split_is_8_2_2_per_digit_and_heldout_is_the_rest(writer):
    labels = np.array([d.label for d in handwriting.load_writers()[writer]])
    split = ws.draw_split(labels, writer, 3)
    for digit in range(10):
        counts = pd.Series(split[labels == digit]).value_counts()
        assert (counts["train"], counts["val"], counts["test"]) == (8, 2, 2)
        assert counts["heldout"] == (labels == digit).sum() - 12
    assert set(split) == set(ws.SPLITS) and len(split) == len(labels)


def test_same_seed_same_split_other_seed_or_writer_other_split():
    labels = np.array([d.label for d in handwriting.load_writers()["W10"]])
    a, b, c = (ws.draw_split(labels, "W10", s) for s in (0, 0, 1))
    assert (a == b).all() and (a != c).any()
    assert (ws.draw_split(labels, "W09", 0) != a).any()


def test_study_splits_are_disjoint_and_complete(tiny):
    splits = tiny["splits"]
    for writer in WRITERS:
        parts = {name: _indices(splits, writer, 0, name) for name in ws.SPLITS}
        assert [len(parts[n]) for n in ("train", "val", "test")] == [80, 20, 20]
        everyone = len(handwriting.load_writers()[writer])
        assert sum(map(len, parts.values())) == len(set().union(*parts.values())) == everyone
        assert len(parts["heldout"]) >= 300


# --------------------------------------------------------------------------- no leak into selection


def test_selection_and_training_see_only_train_and_val(tiny):
    splits, current, calls = tiny["splits"], None, 0
    for event in tiny["events"]:
        if event[0] == "split":
            current = event[1:]
            continue
        _, train, val = event
        assert train == _indices(splits, *current, "train")
        assert val == _indices(splits, *current, "val")
        calls += 1
    # per writer: 2 selections, 1 + 2 grid runs, 2 final runs
    assert calls == len(WRITERS) * (2 + 3 + 2)


def test_selection_cost_selects_before_any_heldout_score(pretrained):
    with pytest.MonkeyPatch.context() as mp:
        spy = Spy(mp)
        ws.selection_cost("W10", 0, grids=TINY, pretrained=pretrained, progress=False)
    kinds = [e[0] for e in spy.events]
    assert kinds.count("select") == 2 and kinds.count("heldout") == 2
    assert max(i for i, k in enumerate(kinds) if k == "select") < kinds.index("heldout")


# --------------------------------------------------------------------------- recounts


def test_study_counts_recount_from_predictions(tiny):
    study, pred = tiny["study"], tiny["predictions"]
    assert len(study) == len(WRITERS) * 3 and set(study.model) == set(ws.MODELS)
    hits = pred.assign(hit=pred.true == pred.pred).groupby(["writer", "split_seed", "model", "set"])["hit"]
    counts = pd.DataFrame({"correct": hits.sum(), "total": hits.size()})
    for _, row in study.iterrows():
        for set_name, prefix in (("test", "own_test"), ("heldout", "heldout")):
            c = counts.loc[(row.writer, row.split_seed, row.model, set_name)]
            assert (row[f"{prefix}_correct"], row[f"{prefix}_total"]) == (c.correct, c.total)


def test_predictions_cover_exactly_the_test_and_heldout_digits(tiny):
    pred, splits = tiny["predictions"], tiny["splits"]
    for (writer, seed, model_name, set_name), p in pred.groupby(["writer", "split_seed", "model", "set"]):
        assert set(p["index"]) == _indices(splits, writer, seed, set_name) and p["index"].is_unique


def test_pretrained_rows_match_the_whole_model_on_images(pretrained, tiny):
    """The cached-feature path gives the same labels as the whole network on the images."""
    pred = tiny["predictions"]
    p = pred[(pred.writer == "W10") & (pred.model == "pre-trained")].sort_values("index")
    images, labels, _ = handwriting.writer_images("W10", p["index"].to_numpy())
    full = evaluation.predict(pretrained, torch.from_numpy(images)).argmax(1).numpy()
    assert (full == p["pred"].to_numpy()).all() and (labels == p["true"].to_numpy()).all()


def test_pretrained_by_writer_counts(pretrained, tiny):
    table = ws.pretrained_by_writer(["W10"], pretrained).iloc[0]
    assert table.digits == 426 and table.correct + table.errors == 426 and not table.perfect
    pred = tiny["predictions"]
    seen = pred[(pred.writer == "W10") & (pred.model == "pre-trained")]
    assert (seen.true != seen.pred).sum() <= table.errors  # test + held-out are part of all the digits


# --------------------------------------------------------------------------- training equals finetune


@pytest.mark.parametrize("config", [
    training.FinetuneConfig(n_last=1, lr=1e-2, batch_size=16, epochs=4),
    training.FinetuneConfig(n_last=2, lr=1e-3, batch_size=16, epochs=3, body_lr_factor=0.1),
    training.FinetuneConfig(n_last=3, lr=1e-3, batch_size=32, epochs=2, augment=True),
])
def test_train_run_is_finetune_on_cached_features(pretrained, tiny_own, config):
    with training.torch_threads(1):
        model, history = training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=3)
        digits = {k: ws.make_digits(v["x"], v["y"], np.arange(len(v["y"])), pretrained, (1, 2, 3))
                  for k, v in tiny_own.items()}
        run = ws.train_run(pretrained, config, digits["train"], digits["val"], seed=3, keep_epochs=[1])
    for a, b in zip(history, run.history, strict=True):
        assert a["val_correct"] == b["val_correct"]
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4, abs=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4, abs=1e-6)
    probs = evaluation.predict(model, tiny_own["val"]["x"])
    assert (probs.argmax(1).numpy() == run.predict(digits["val"])).all()
    assert set(run.snapshots) == {1}


def test_selection_cost_chosen_row_is_the_study_model(pretrained, tiny):
    table = ws.selection_cost("W10", 0, grids=TINY, pretrained=pretrained, progress=False)
    study = tiny["study"].set_index(["writer", "split_seed", "model"])
    for strategy, t in table.groupby("strategy"):
        chosen = t[t.chosen]
        assert len(chosen) == 1 and chosen["rank"].iloc[0] == 1
        row = study.loc[("W10", 0, strategy)]
        assert chosen.heldout_acc_final_seed.iloc[0] == row.heldout_correct / row.heldout_total
        assert t.tied_with_best.sum() == row.tied_on_val
    summary = ws.selection_cost_summary(table)
    assert (summary.cost >= 0).all() and (summary.best_heldout_acc_mean >= summary.chosen_heldout_acc_mean).all()
    assert list(summary.configurations) == [2, 4]  # 1 lr x 2 epochs; 2 lrs x 2 epochs


def test_rank_ties_are_exact_and_broken_by_validation_loss():
    base = {"n_last": 1, "batch_size": 16, "epochs": 5, "augment": False, "body_lr_factor": 1.0}
    runs = pd.DataFrame([  # 18 + 20 and 19 + 19 correct: tied; the lower mean loss wins
        {**base, "lr": 0.1, "seed": 0, "val_correct": 18, "val_acc": 0.9, "val_loss": 0.3},
        {**base, "lr": 0.1, "seed": 1, "val_correct": 20, "val_acc": 1.0, "val_loss": 0.3},
        {**base, "lr": 0.2, "seed": 0, "val_correct": 19, "val_acc": float(np.float32(0.95)), "val_loss": 0.2},
        {**base, "lr": 0.2, "seed": 1, "val_correct": 19, "val_acc": float(np.float32(0.95)), "val_loss": 0.2},
    ])
    ranking = ws.rank(runs, 20)
    assert list(ranking.lr) == [0.2, 0.1] and ranking.tied_with_best.all()
    assert ranking.val_acc_mean.iloc[0] == 0.95


# --------------------------------------------------------------------------- summary


def test_t_quantile_matches_tables():
    assert stats.t_quantile(0.975, 9) == pytest.approx(2.262157, abs=1e-4)
    assert stats.t_quantile(0.975, 4) == pytest.approx(2.776445, abs=1e-4)
    assert stats.t_quantile(0.975, 1) == pytest.approx(12.7062, abs=2e-3)


def _synthetic_study(seed=0, writers=5, seeds=2):
    rng = np.random.default_rng(seed)
    rows = []
    for w in range(writers):
        for s in range(seeds):
            for m in ws.MODELS:
                rows.append({"writer": f"W{w:02d}", "split_seed": s, "model": m,
                             "heldout_correct": int(rng.integers(280, 300)), "heldout_total": 300,
                             "own_test_correct": int(rng.integers(18, 21)), "own_test_total": 20})
    return pd.DataFrame(rows)


def test_summary_recounts_from_the_table():
    study = _synthetic_study()
    summary = ws.summarize(study, "heldout")
    acc = study.assign(a=study.heldout_correct / study.heldout_total)
    means = acc.groupby(["writer", "model"]).a.mean().unstack()
    for a, b in ws.COMPARISONS:
        diff = (means[a] - means[b]).to_numpy()
        gain = summary["gains"][f"{a} - {b}"]
        half = 2.776445 * diff.std(ddof=1) / math.sqrt(5)
        assert gain["mean"] == pytest.approx(diff.mean())
        assert (gain["ci_low"], gain["ci_high"]) == pytest.approx((diff.mean() - half, diff.mean() + half), abs=1e-6)
        assert (gain["better"], gain["worse"], gain["equal"]) == ((diff > 0).sum(), (diff < 0).sum(), (diff == 0).sum())
    spread = acc.groupby(["writer", "model"]).a.std(ddof=1).unstack().mean()
    for m in ws.MODELS:
        assert summary["seed_std"][m] == pytest.approx(spread[m])
    own = ws.summarize(study, "test")
    assert own["accuracy"]["pre-trained"]["mean"] == pytest.approx(
        (study[study.model == "pre-trained"].own_test_correct / 20).mean())


def test_per_writer_table_and_figure():
    study = _synthetic_study(writers=3)
    table = ws.per_writer(study)
    assert list(table.columns.get_level_values(0).unique()) == list(ws.MODELS)
    assert (table.xs("min", axis=1, level=1) <= table.xs("max", axis=1, level=1)).all().all()
    fig = plots.plot_writers(study)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "writer" and "accuracy" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["W00", "W01", "W02"]
    assert len(ax.get_legend().get_texts()) == 3
    plt.close(fig)
    same = pd.concat([study[study.split_seed == 0].assign(split_seed=s, heldout_correct=806, heldout_total=808)
                      for s in range(3)])  # equal accuracies over seeds: a zero range, never a negative one
    plt.close(plots.plot_writers(same))


def test_save_and_load_round_trip(tiny, tmp_path):
    written = ws.save_study({k: tiny[k] for k in ("study", "predictions", "splits")}, tmp_path)
    assert written["predictions"].name.endswith(".csv.gz")
    back = ws.load_study(tmp_path)
    for key in ("study", "predictions", "splits"):
        pd.testing.assert_frame_equal(back[key], tiny[key], check_dtype=False)
    assert back["summary"]["heldout"]["writers"] == len(WRITERS)


def test_tiny_study_is_fast(tiny):
    assert tiny["wall"] < 15


def test_every_final_model_is_scored_on_mnist_and_the_pretrained_count_is_recomputed(tiny, pretrained):
    study = tiny["study"]
    assert (study.mnist_total == 500).all() and study.mnist_correct.between(0, 500).all()
    x, y = data_mod.load_mnist("test")
    pick = np.sort(np.random.default_rng(0).permutation(len(y))[:500])
    correct = int((evaluation.predict(pretrained, x[pick]).argmax(1) == y[pick]).sum())
    assert (study.loc[study.model == "pre-trained", "mnist_correct"] == correct).all()
    summary = ws.study_summary(study)
    assert set(summary) == {"heldout", "own_test", "mnist"}
    assert "MNIST test (10,000)" in set(ws.gains_table(summary)["evaluated on"])


def test_agreement_needs_the_same_choices_and_counts_within_two_images(tiny):
    study = tiny["study"]
    assert ws.agreement(study, study) == {"rows": len(study), "found": len(study), "same_choices": len(study),
                                          "max_difference": 0, "agree": True}
    off = study.copy()
    off.loc[off.index[1], "heldout_correct"] += 2
    assert ws.agreement(study, off)["agree"] and ws.agreement(study, off)["max_difference"] == 2
    off.loc[off.index[1], "mnist_correct"] += 3
    assert not ws.agreement(study, off)["agree"]
    other = study.copy()
    row = other.index[other.model == "last layer"][0]
    other.loc[row, "hyperparameters"] = other.loc[row, "hyperparameters"].replace('"lr": ', '"lr": 1')
    check = ws.agreement(study, other)
    assert not check["agree"] and check["same_choices"] == len(study) - 1
    assert not ws.agreement(study, study.iloc[1:])["agree"]  # a row the committed study lacks


def test_same_grids_compares_the_committed_summary(tiny, tmp_path):
    ws.save_study({k: tiny[k] for k in ("study", "predictions", "splits")} | {"grids": tiny["grids"]}, tmp_path)
    back = ws.load_study(tmp_path)
    assert ws.same_grids(back, TINY) and not ws.same_grids(back, ws.DEFAULT_GRIDS) and not ws.same_grids({}, TINY)
