import inspect

import pandas as pd
import pytest
import torch

from mnist_transfer import model, stats, training


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


def test_grid_search_never_takes_a_test_set():
    params = inspect.signature(training.grid_search).parameters
    assert not any("test" in name for name in params)
    assert not any("test" in name for name in inspect.signature(training.finetune).parameters)


def test_grid_search_reads_epochs_off_one_run(pretrained, tiny_own):
    runs, curves = training.grid_search(pretrained, tiny_own["train"], tiny_own["val"], n_last_values=[1],
                                        lrs=[1e-2], batch_sizes=[32], epoch_values=[1, 3], seeds=[0], progress=False)
    assert sorted(runs.epochs) == [1, 3] and len(curves) == 3
    _, history = training.finetune(pretrained, training.FinetuneConfig(n_last=1, lr=1e-2, batch_size=32, epochs=1),
                                   tiny_own["train"], tiny_own["val"], seed=0)
    assert runs[runs.epochs == 1].val_loss.item() == pytest.approx(history[-1]["val_loss"], abs=1e-6)


def test_ranking_uses_mean_accuracy_then_loss():
    rows = []
    for lr, accs, loss in ((1e-3, [0.9, 0.9], 0.5), (1e-2, [1.0, 0.8], 0.3), (3e-2, [0.95, 0.95], 0.9), (3e-3, [0.95, 0.95], 0.4)):
        for seed, acc in enumerate(accs):
            rows.append({"n_last": 1, "lr": lr, "batch_size": 8, "epochs": 5, "augment": False,
                         "body_lr_factor": 1.0, "seed": seed, "val_acc": acc, "val_loss": loss})
    ranking = training.rank_configurations(pd.DataFrame(rows))
    assert ranking.lr.tolist() == [3e-3, 3e-2, 1e-2, 1e-3]
    assert training.best_config(ranking).lr == 3e-3


def test_random_affine_is_reproducible_and_keeps_background():
    x = torch.full((4, 1, 28, 28), (0 - 0.1307) / 0.3081)
    a = training.random_affine(x, torch.Generator().manual_seed(1))
    b = training.random_affine(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.allclose(a, x, atol=1e-5)  # an empty image stays empty


def test_pick_device_defaults_to_cpu_here_and_obeys_override(monkeypatch):
    monkeypatch.setenv("DIGITS_DEVICE", "cpu")
    assert model.pick_device().type == "cpu"


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


def test_per_class_metrics_on_a_small_example():
    rows = stats.per_class_metrics([0, 0, 1, 1], [0, 1, 1, 1], n_classes=2)
    assert rows[0]["recall"] == 0.5 and rows[0]["precision"] == 1.0
    assert rows[1]["recall"] == 1.0 and rows[1]["precision"] == pytest.approx(2 / 3)
    assert stats.confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], 2).tolist() == [[1, 1], [0, 2]]
