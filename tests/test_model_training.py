import inspect

import pandas as pd
import pytest
import torch

from mnist_transfer import data, model, stats, training, tuning


def test_stages_are_named_and_cover_every_parameter():
    cnn = model.DigitCNN()
    assert tuple(name for name, _ in cnn.named_children()) == model.STAGES
    assert sum(sum(p.numel() for p in getattr(cnn, s).parameters()) for s in model.STAGES) == model.count_parameters(cnn)


@pytest.mark.parametrize("n_last", [1, 2, 3, 5])
def test_freeze_all_but_last_leaves_exactly_those_stages_trainable(n_last):
    cnn = model.DigitCNN()
    unfrozen = model.freeze_all_but_last(cnn, n_last)
    assert unfrozen == model.STAGES[-n_last:]
    for name in model.STAGES:
        flags = {p.requires_grad for p in getattr(cnn, name).parameters()}
        assert flags == {name in unfrozen}
    model.train_mode(cnn)
    for name in model.STAGES:
        assert getattr(cnn, name).training == (name in unfrozen)


def test_freeze_rejects_impossible_n():
    with pytest.raises(ValueError):
        model.freeze_all_but_last(model.DigitCNN(), 6)


@pytest.mark.parametrize("n_last,augment", [(1, False), (2, False), (3, True)])
def test_fine_tuning_moves_only_unfrozen_stages_bit_for_bit(pretrained, tiny_own, n_last, augment):
    config = training.FinetuneConfig(n_last=n_last, lr=1e-2, batch_size=16, epochs=2, augment=augment)
    tuned, history = training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=0)
    changed = model.changed_stages(pretrained, tuned)
    assert changed == {name: name in model.STAGES[-n_last:] for name in model.STAGES}
    assert len(history) == 2 and {"train_loss", "val_acc", "val_loss"} <= set(history[0])


def test_feature_caching_gives_the_same_model_as_full_forward(pretrained, tiny_own):
    """Without augmentation the frozen prefix is computed once; that must not change the result."""
    config = training.FinetuneConfig(n_last=2, lr=3e-3, batch_size=16, epochs=2)
    cached, _ = training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=0)
    # Reference: the same training with every batch through the whole network.
    torch.manual_seed(0)
    ref = model.DigitCNN()
    ref.load_state_dict(pretrained.state_dict())
    model.freeze_all_but_last(ref, 2)
    generator = training.seed_everything(0)
    opt = torch.optim.Adam([p for p in ref.parameters() if p.requires_grad], lr=3e-3)
    from mnist_transfer import data
    x, y = data.normalize(tiny_own["train"]["x"]), tiny_own["train"]["y"]
    for _ in range(2):
        model.train_mode(ref)
        order = torch.randperm(len(x), generator=generator)
        for s in range(0, len(x), 16):
            idx = order[s : s + 16]
            loss = torch.nn.functional.cross_entropy(ref(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    for k, v in cached.state_dict().items():
        assert torch.allclose(v.float(), ref.state_dict()[k].float(), atol=1e-5), k


def test_same_seed_same_result_different_seed_different(pretrained, tiny_own):
    config = training.FinetuneConfig(n_last=3, lr=1e-3, batch_size=16, epochs=2, augment=True)
    a, ha = training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=3)
    b, hb = training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=3)
    c, _ = training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=4)
    assert ha == hb
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_fine_tuning_runs_on_one_torch_thread_and_restores_the_number(pretrained, tiny_own):
    """Tiny batches: a second thread only waits (measured 4-20x slower on a busy machine, same weights)."""
    seen = []
    config = training.FinetuneConfig(n_last=2, lr=1e-3, batch_size=16, epochs=2)
    with training.torch_threads(2):
        training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=0,
                          on_epoch=lambda row: seen.append(torch.get_num_threads()))
        assert torch.get_num_threads() == 2
    assert seen == [training.FINETUNE_THREADS] * 2 == [1, 1]


def test_grid_search_never_takes_a_test_set(pretrained, tiny_own, monkeypatch):
    """No selection function has a test parameter, and a grid search hands finetune only train and val."""
    for fn in (tuning.grid_search, tuning.tricks_search, training.finetune):
        assert not any("test" in name for name in inspect.signature(fn).parameters), fn.__name__
    seen = []
    real = training.finetune

    def spy(pretrained_, config, train, val, seed):
        seen.append((train, val))
        return real(pretrained_, config, train, val, seed)

    monkeypatch.setattr(tuning, "finetune", spy)
    tuning.grid_search(pretrained, tiny_own["train"], tiny_own["val"], n_last_values=[1], lrs=[1e-2],
                       batch_sizes=[32], epoch_values=[1], seeds=[0, 1], progress=False)
    assert len(seen) == 2 and all(t is tiny_own["train"] and v is tiny_own["val"] for t, v in seen)


def test_grid_search_reads_epochs_off_one_run(pretrained, tiny_own):
    runs, curves = tuning.grid_search(pretrained, tiny_own["train"], tiny_own["val"], n_last_values=[1],
                                        lrs=[1e-2], batch_sizes=[32], epoch_values=[1, 3], seeds=[0], progress=False)
    assert sorted(runs.epochs) == [1, 3] and len(curves) == 3
    _, history = training.finetune(pretrained, training.FinetuneConfig(n_last=1, lr=1e-2, batch_size=32, epochs=1),
                                   tiny_own["train"], tiny_own["val"], seed=0)
    assert runs[runs.epochs == 1].val_loss.item() == pytest.approx(history[-1]["val_loss"], abs=1e-6)


def test_ranking_uses_mean_accuracy_then_loss():
    rows = []
    for lr, accs, loss in ((1e-3, [0.9, 0.9], 0.5), (1e-2, [1.0, 0.8], 0.3), (3e-2, [0.95, 0.95], 0.9), (3e-3, [0.95, 0.95], 0.4)):
        for seed, acc in enumerate(accs):
            rows.append({"n_last": 1, "lr": lr, "batch_size": 8, "epochs": 5, "augment": False, "body_lr_factor": 1.0,
                         "seed": seed, "val_acc": acc, "val_correct": round(20 * acc), "val_loss": loss})
    ranking = tuning.rank_configurations(pd.DataFrame(rows))
    assert ranking.lr.tolist() == [3e-3, 3e-2, 1e-2, 1e-3]
    assert tuning.best_config(ranking).lr == 3e-3


def test_equal_counts_tie_exactly_and_the_loss_decides():
    """10/20 and 16/20 over two seeds against 13/20 twice: the same 26 images right, but the means of the
    float32 accuracies differ in the last bit, and only the counts let the validation loss decide."""
    rows = []
    for lr, counts, loss in ((1e-3, (10, 16), 0.30), (1e-2, (13, 13), 0.10)):
        for seed, count in enumerate(counts):
            rows.append({"n_last": 1, "lr": lr, "batch_size": 8, "epochs": 5, "augment": False, "body_lr_factor": 1.0,
                         "seed": seed, "val_acc": torch.tensor(count / 20).item(), "val_correct": count,
                         "val_loss": loss})
    ranking = tuning.rank_configurations(pd.DataFrame(rows))
    assert ranking.val_correct_mean.tolist() == [13.0, 13.0]
    assert ranking.lr.tolist() == [1e-2, 1e-3]  # the lower validation loss wins the tie


def test_random_affine_is_reproducible_moves_digits_and_keeps_background():
    background = (0 - data.MNIST_MEAN) / data.MNIST_STD
    x = torch.full((4, 1, 28, 28), background)
    a = training.random_affine(x, torch.Generator().manual_seed(1))
    assert torch.allclose(a, x, atol=1e-5)  # an empty image stays empty
    digits = data.normalize(data.load_mnist("test")[0][:8])
    b = training.random_affine(digits, torch.Generator().manual_seed(1))
    c = training.random_affine(digits, torch.Generator().manual_seed(1))
    d = training.random_affine(digits, torch.Generator().manual_seed(2))
    assert torch.equal(b, c)  # reproducible from the generator
    assert (b - digits).abs().mean() > 0.05  # every image actually moved ...
    assert all((b[i] - digits[i]).abs().max() > 0.5 for i in range(8))
    assert not torch.equal(b, d)  # ... by a warp that depends on the seed
    assert b.min() >= background - 1e-4  # and nothing darker than the background appears


def test_pick_device_defaults_to_cpu_here_and_obeys_override(monkeypatch):
    monkeypatch.delenv("DIGITS_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available() else "cpu")
    assert model.pick_device().type == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert model.pick_device().type == "cpu"  # CPU by default when there is no accelerator
    monkeypatch.setenv("DIGITS_DEVICE", "meta")
    assert model.pick_device().type == "meta"  # the override wins
    assert model.pick_device("cpu").type == "cpu"  # and an explicit argument wins over both


def test_missing_checkpoint_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebook 00"):
        model.load_pretrained("cpu", checkpoint=tmp_path / "none.pt")


def test_wilson_interval_known_values():
    low, high = stats.wilson_interval(20, 20)
    assert low == pytest.approx(0.8389, abs=1e-4) and high == 1.0
    low, high = stats.wilson_interval(15, 20)
    assert low == pytest.approx(0.5313, abs=1e-3) and high == pytest.approx(0.8881, abs=1e-3)
    with pytest.raises(ValueError):
        stats.wilson_interval(3, 2)
    assert all(stats.wilson_interval(n, n)[1] == 1.0 and stats.wilson_interval(0, n)[0] == 0.0 for n in range(1, 1001))


def test_per_class_metrics_on_a_small_example():
    rows = stats.per_class_metrics([0, 0, 1, 1], [0, 1, 1, 1], n_classes=2)
    assert rows[0]["recall"] == 0.5 and rows[0]["precision"] == 1.0
    assert rows[1]["recall"] == 1.0 and rows[1]["precision"] == pytest.approx(2 / 3)
    assert stats.confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], 2).tolist() == [[1, 1], [0, 2]]


def test_mcnemar_exact_known_values():
    # 5 disagreements all one way: two-sided p = 2 / 2**5
    assert stats.mcnemar_exact([1] * 5 + [1] * 5, [0] * 5 + [1] * 5) == {"a_only": 5, "b_only": 0, "p_value": 0.0625}
    # 10 disagreements, 9 against 1: p = 2 * (1 + 10) / 1024
    a = [1] * 9 + [0] + [1] * 3
    b = [0] * 9 + [1] + [1] * 3
    assert stats.mcnemar_exact(a, b)["p_value"] == pytest.approx(22 / 1024)
    assert stats.mcnemar_exact(a, a) == {"a_only": 0, "b_only": 0, "p_value": 1.0}
    assert stats.mcnemar_exact([1, 0], [0, 1])["p_value"] == 1.0


def _ranking_and_curves(lrs, seeds=(0, 1, 2)):
    rows, curves = [], []
    for lr in lrs:
        for seed in seeds:
            key = {"n_last": 1, "lr": lr, "batch_size": 8, "augment": False, "body_lr_factor": 1.0, "seed": seed}
            acc = 0.9 if lr == lrs[0] else 0.8 + 0.05 * seed
            rows.append({**key, "epochs": 3, "val_acc": acc, "val_correct": round(20 * acc), "val_loss": 0.5})
            for epoch, loss in enumerate([1.0, 0.6, 0.8], start=1):
                curves.append({**key, "epoch": epoch, "val_loss": loss + 0.1 * seed})
    return tuning.rank_configurations(pd.DataFrame(rows)), pd.DataFrame(curves)


def test_stability_measures_seed_spread_lr_range_and_roughness():
    ranking, curves = _ranking_and_curves([1e-3, 1e-2])
    steady = tuning.stability(ranking, curves, training.FinetuneConfig(n_last=1, lr=1e-3, batch_size=8, epochs=3))
    assert steady["seed_std"] == 0 and steady["seeds"] == 3
    assert steady["lr_range"] == pytest.approx(0.05)  # 0.9 at 1e-3, 0.85 on average at 1e-2
    assert steady["lrs_tried"] == [1e-3, 1e-2]
    assert steady["val_loss_roughness"] == pytest.approx((0.4 + 0.2) / 2)  # |0.6-1.0| and |0.8-0.6|
    jumpy = tuning.stability(ranking, curves, training.FinetuneConfig(n_last=1, lr=1e-2, batch_size=8, epochs=3))
    assert jumpy["seed_std"] == pytest.approx(0.05)
    # up to epochs=2 only the first step counts
    short_rank, short_curves = _ranking_and_curves([1e-3])
    short_rank["epochs"] = 2
    one = tuning.stability(short_rank, short_curves, training.FinetuneConfig(n_last=1, lr=1e-3, batch_size=8, epochs=2))
    assert one["val_loss_roughness"] == pytest.approx(0.4)
    assert one["lr_range"] == 0 and one["lrs_tried"] == [1e-3]  # one rate: the range is no measurement
    table = tuning.stability_table({"a": one})
    assert table.loc["learning rates compared", "a"] == 1


def test_tricks_search_skips_the_variant_it_was_given(pretrained, tiny_own):
    base = training.FinetuneConfig(n_last=2, lr=1e-2, batch_size=32, epochs=1)
    runs, _ = tuning.tricks_search(pretrained, tiny_own["train"], tiny_own["val"], base, epoch_values=[1], seeds=[0],
                                   augment_values=[False, True], body_lr_factors=[1.0, 0.1], progress=False)
    variants = set(zip(runs.augment, runs.body_lr_factor))
    assert variants == {(False, 0.1), (True, 1.0), (True, 0.1)}  # (False, 1.0) is base's own, already trained
    assert set(runs.n_last) == {2} and set(runs.lr) == {1e-2}


def test_save_pretrained_keeps_a_different_old_checkpoint(tmp_path, pretrained):
    ckpt, metrics = tmp_path / "m.pt", tmp_path / "m.json"
    kwargs = dict(checkpoint=ckpt, metrics_file=metrics, backup_dir=tmp_path / "backups")
    first = model.save_pretrained(pretrained, {"run": 1}, **kwargs)
    assert first["previous_kept_in"] is None
    again = model.save_pretrained(pretrained, {"run": 1}, **kwargs)
    assert again["previous_kept_in"] is None  # same weights: nothing to keep
    other = model.DigitCNN()
    kept = []
    for run in (2, 3):  # twice within one second: two distinct backup folders
        kept.append(model.save_pretrained(other if run == 2 else pretrained, {"run": run}, {"LeNet-5": {"seconds": 1.0}}, **kwargs))
    folders = [r["previous_kept_in"] for r in kept]
    assert all(folders) and len(set(folders)) == 2
    old = torch.load(f"{folders[0]}/m.pt", weights_only=True)
    assert all(torch.equal(old[k], v) for k, v in pretrained.state_dict().items())
    import json
    assert json.loads(metrics.read_text(encoding="utf-8")) == {"run": 3, "epoch_seconds_measured": {"LeNet-5": 1.0}}


def test_score_after_selection_reproduces_the_final_model(pretrained, tiny_own):
    """Scored after the choice, the chosen configuration's row is exactly the final model on the held-out set."""
    x, y = data.load_mnist("test")
    heldout = {"x": x[200:300], "y": y[200:300]}
    runs, _ = tuning.grid_search(pretrained, tiny_own["train"], tiny_own["val"], n_last_values=[1], lrs=[1e-3, 3e-2],
                                 batch_sizes=[16], epoch_values=[1, 3], seeds=[0], progress=False)
    ranking = tuning.rank_configurations(runs)
    table = tuning.score_after_selection(pretrained, ranking, tiny_own["train"], heldout, [1, 3], seed=0)
    assert table[tuning.CONFIG_COLUMNS].equals(ranking[tuning.CONFIG_COLUMNS]) and len(table) == 4
    final, _ = training.finetune(pretrained, tuning.best_config(ranking), tiny_own["train"], tiny_own["val"], seed=0)
    from mnist_transfer import evaluation
    correct = int((evaluation.predict(final, heldout["x"]).argmax(1) == heldout["y"]).sum())
    assert table.heldout_correct.iloc[0] == correct
    cost = tuning.selection_cost(table)
    assert cost["cost"] == pytest.approx(table.heldout_correct.max() / 100 - correct / 100)
    assert cost["tied"] == int((ranking.val_correct_mean == ranking.val_correct_mean.iloc[0]).sum())


@pytest.mark.parametrize("n_last", [2, 5])
def test_scoring_at_some_epochs_only_changes_nothing_else(pretrained, tiny_own, n_last):
    """``val_epochs`` (a large held-out set scored at a few epoch counts) leaves the training bit for bit as it is."""
    config = training.FinetuneConfig(n_last=n_last, lr=1e-3, batch_size=16, epochs=6)
    every, h_every = training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=3)
    some, h_some = training.finetune(pretrained, config, tiny_own["train"], tiny_own["val"], seed=3, val_epochs={2, 6})
    assert all(torch.equal(a, b) for a, b in zip(every.state_dict().values(), some.state_dict().values()))
    assert [h["epoch"] for h in h_some if "val_correct" in h] == [2, 6]
    for a, b in zip(h_every, h_some):
        assert a["train_loss"] == b["train_loss"] and all(a[k] == b[k] for k in b)
