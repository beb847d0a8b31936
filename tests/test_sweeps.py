"""The learning-rate and depth sweeps (issue 18): summaries recounted from per-run rows, choices on validation
only, the committed full sweep recomputed in part."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from mnist_transfer import paths, sweeps


def _runs(heldout, val=None, writers=("A", "B"), seeds=(0, 1)) -> pd.DataFrame:
    """Rows of a made-up sweep: ``heldout[n][lr]`` = held-out correct of 100 at the last epoch, for every writer
    and seed (writer B one image lower, seed 1 one more); ``val[n][lr]`` = validation correct of 20."""
    rows = []
    for n_last, by_lr in heldout.items():
        for (lr, correct), writer, seed in itertools.product(by_lr.items(), writers, seeds):
            last = sweeps.EPOCHS[n_last]
            for epoch in (last - 1, last):
                rows.append({"writer": writer, "n_last": n_last, "lr": lr, "seed": seed, "batch_size": 16,
                             "epoch": epoch, "train_loss": 0.1, "val_correct": (val or {}).get(n_last, {}).get(lr, 20),
                             "val_total": 20, "val_loss": lr, "heldout_correct": correct - (writer == "B") + seed,
                             "heldout_total": 100, "heldout_loss": 0.5,
                             "mnist_correct": 9900 - n_last if epoch == last else np.nan, "mnist_total": 10000})
    return pd.DataFrame(rows)


HELD = {1: {1e-3: 80, 1e-2: 90, 1e-1: 90.5, 3e-1: 70}, 2: {1e-3: 95, 1e-2: 60, 1e-1: 10, 3e-1: 10}}


def test_lr_table_recounts_means_over_seeds_then_writers():
    table = sweeps.lr_table(_runs(HELD)).set_index(["n_last", "lr"])
    # writer A: seeds 80, 81 -> 80.5; writer B: 79, 80 -> 79.5; mean 80.0 of 100
    assert table.loc[(1, 1e-3), "heldout_acc"] == pytest.approx(0.80)
    assert table.loc[(1, 1e-3), "seed_low"] == pytest.approx(0.795) and table.loc[(1, 1e-3), "seed_high"] == pytest.approx(0.805)
    assert table.loc[(2, 1e-3), "mnist_acc"] == pytest.approx(0.9898)
    assert (table.writers == 2).all()


def test_stable_range_is_the_unbroken_run_within_one_point_of_the_best():
    ranges = sweeps.stable_ranges(sweeps.lr_table(_runs(HELD))).set_index("n_last")
    assert ranges.loc[1, "best_lr"] == 1e-1 and (ranges.loc[1, "lr_low"], ranges.loc[1, "lr_high"]) == (1e-2, 1e-1)
    assert ranges.loc[1, "steps"] == 2 and ranges.loc[1, "decades"] == pytest.approx(1.0)
    assert ranges.loc[2, "steps"] == 1 and ranges.loc[2, "decades"] == 0 and ranges.loc[2, "at_edge"]
    assert ranges.loc[2, "worst_heldout_acc"] == pytest.approx(0.10)


def test_the_depths_rate_is_chosen_on_validation_and_held_out_digits_cannot_move_it():
    val = {1: {1e-3: 18, 1e-2: 20, 1e-1: 20, 3e-1: 15}, 2: {1e-3: 19, 1e-2: 20, 1e-1: 12, 3e-1: 12}}
    runs = _runs(HELD, val)
    depth = sweeps.depth_table(runs).set_index("n_last")
    # n = 1: 1e-2 and 1e-1 tie on validation (20/20); the lower validation loss (here = lr) wins
    assert depth.loc[1, "lr_chosen_on_val"] == 1e-2 and depth.loc[1, "rates_tied_on_val"] == 2
    assert depth.loc[2, "lr_chosen_on_val"] == 1e-2  # the best held-out rate (1e-3) is not picked
    assert depth.loc[2, "heldout_acc"] == pytest.approx(0.60)
    scrambled = runs.assign(heldout_correct=np.random.default_rng(0).permutation(runs.heldout_correct.to_numpy()),
                            heldout_loss=0.0, mnist_correct=9000.0)
    assert sweeps.depth_table(scrambled).lr_chosen_on_val.tolist() == depth.lr_chosen_on_val.tolist()


def test_oscillation_measures_the_late_epochs():
    runs = _runs({1: {1e-2: 90}})
    table = sweeps.oscillation(runs)
    assert table.late_range.iloc[0] == 0 and table.last_below_best.iloc[0] == 0
    bumpy = runs.copy()
    bumpy.loc[bumpy.epoch == sweeps.EPOCHS[1] - 1, "heldout_correct"] += 5
    assert sweeps.oscillation(bumpy).last_below_best.iloc[0] == pytest.approx(0.05)


def test_agreement_counts_differences_and_missing_runs():
    runs = _runs(HELD)
    assert sweeps.agreement(runs, runs) == {"rows": len(runs), "found": len(runs), "identical": len(runs),
                                            "max_difference": 0, "agree": True}
    off = runs.copy()
    off.loc[0, "heldout_correct"] += 3
    check = sweeps.agreement(off, runs)
    assert check["identical"] == len(runs) - 1 and check["max_difference"] == 3 and not check["agree"]
    extra = pd.concat([runs, runs.head(1).assign(lr=0.5)])
    assert not sweeps.agreement(extra, runs)["agree"]
    # a bigger set allows 1% of it: 8 of 808 held-out digits, not 9; 20 validation digits still only 2
    big = runs.assign(heldout_total=808)
    assert sweeps.agreement(big.assign(heldout_correct=big.heldout_correct + 8), big)["agree"]
    assert not sweeps.agreement(big.assign(heldout_correct=big.heldout_correct + 9), big)["agree"]
    assert not sweeps.agreement(big.assign(val_correct=big.val_correct - 3), big)["agree"]


@pytest.fixture(scope="module")
def tiny(pretrained):
    plan = sweeps.Sweep(writers=("W03",), depths=(1, 2), lrs=(1e-2,), seeds=(0,))
    return sweeps.run_sweep(plan, pretrained, progress=False)


def test_a_sweep_run_scores_every_epoch_and_is_reproducible(tiny, pretrained):
    runs = tiny["runs"]
    assert sorted(runs.groupby("n_last").epoch.max().to_dict().items()) == [(1, 40), (2, 20)]
    assert (runs.val_total == 20).all() and (runs.heldout_total > 300).all()
    assert runs.mnist_correct.notna().sum() == 2 and (runs.dropna().mnist_correct > 0.9 * sweeps.MNIST_IMAGES).all()
    assert sorted(runs[runs.n_last == 2].epoch) == [5, 10, 15, 20]  # W03 draws no curve: four scored epochs
    again = sweeps.run_sweep(sweeps.Sweep(writers=("W03",), depths=(2,), lrs=(1e-2,), seeds=(0,)), pretrained,
                             progress=False)["runs"]
    assert sweeps.agreement(again, runs)["identical"] == len(again)


def test_saved_sweep_reads_back_with_its_summary(tiny, tmp_path):
    written = sweeps.save_sweep(tiny, tmp_path)
    back = sweeps.load_sweep(tmp_path)
    pd.testing.assert_frame_equal(back["runs"], tiny["runs"], check_dtype=False)
    assert back["summary"]["runs"] == 2 and written["runs"].read_bytes() == sweeps.save_sweep(tiny, tmp_path)["runs"].read_bytes()
    (tmp_path / sweeps.FILES["summary"]).write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="damaged.*SWEEP = 'full'"):
        sweeps.load_sweep(tmp_path)


COMMITTED = sweeps.load_sweep(paths.RESULTS_DIR)


@pytest.mark.skipif(COMMITTED is None, reason="no committed full sweep")
def test_committed_summary_is_recounted_from_its_runs():
    summary = json.loads(json.dumps(sweeps.summarize({"runs": COMMITTED["runs"]}), default=sweeps._plain))
    for key in ("stable_ranges", "depth", "runs"):
        assert summary[key] == COMMITTED["summary"][key], key
    plan = COMMITTED["summary"]["sweep"]
    assert len(sweeps.final_epoch(COMMITTED["runs"])) == (len(plan["writers"]) * len(plan["depths"]) * len(plan["lrs"])
                                                          * len(plan["seeds"]))


@pytest.mark.skipif(COMMITTED is None, reason="no committed full sweep")
def test_committed_sweep_is_what_the_code_computes_now(pretrained):
    """Two of its runs (a cheap one and a deep one) trained again here: the same counts, epoch by epoch."""
    plan = sweeps.Sweep(writers=("W05",), depths=(1, 3), lrs=(3e-2,), seeds=(1,))
    again = sweeps.run_sweep(plan, pretrained, progress=False)["runs"]
    check = sweeps.agreement(again, COMMITTED["runs"])
    assert check["found"] == len(again) and check["agree"], check


def test_each_writers_stable_range_uses_that_writers_curve_and_the_spread_counts_them():
    held = {1: {1e-3: 80, 1e-2: 90, 1e-1: 90.5, 3e-1: 70}}
    runs = _runs(held)
    runs.loc[(runs.writer == "B") & (runs.lr == 1e-3), "heldout_correct"] += 10  # B is steady down to 1e-3
    widths = sweeps.writer_ranges(runs).set_index("writer")
    for writer in ("A", "B"):
        alone = sweeps.stable_ranges(sweeps.lr_table(runs[runs.writer == writer])).iloc[0]
        assert widths.loc[writer, "decades"] == pytest.approx(alone.decades)
    assert widths.loc["A", "lr_low"] == 1e-2 and widths.loc["B", "lr_low"] == 1e-3
    spread = sweeps.range_spread(runs).iloc[0]
    assert spread.decades_mean == pytest.approx(widths.decades.mean())
    assert spread.decades_min == pytest.approx(1.0) and spread.decades_max == pytest.approx(2.0)
    assert 0 <= spread.decades_ci_low <= spread.decades_mean <= spread.decades_ci_high <= np.log10(3e-1 / 1e-3)
