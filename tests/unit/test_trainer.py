"""The one Trainer: CE plus a soft-target term (the zero-shot prior, a teacher's soft labels), the head's own
learning rate through the optimizer's groups, and WiSE-FT interpolation."""

from __future__ import annotations

import pytest
import torch
from conftest import NEGATIVE, POSITIVE
from datasets import Dataset
from torch import nn
from torch.nn import functional as F
from transformers import DataCollatorWithPadding

from hf_transfer.finetune import FinetuneConfig, prepare, tokenize
from hf_transfer.metrics import classification
from hf_transfer.trainer import SOFT_TARGETS, TransferTrainer, WeightInterpolationCallback, soft_target_loss

pytestmark = pytest.mark.usefixtures("single_thread")
LABELS = ["negative", "positive"]


def test_soft_target_loss_by_hand():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 3, generator=generator)
    targets = (torch.randn(5, 3, generator=generator) * 2).softmax(-1)
    labels = torch.tensor([0, 2, 1, 1, 0])
    for t, w in ((1.0, 0.25), (2.0, 0.5), (3.0, 1.0)):
        p = torch.softmax(targets.log() / t, -1)
        q = torch.softmax(logits / t, -1)
        kl = (p * (p / q).log()).sum(-1).mean() * t * t  # KL(target || model): the target's direction
        expected = kl if w == 1.0 else (1 - w) * F.cross_entropy(logits, labels) + w * kl
        assert soft_target_loss(logits, targets, labels, weight=w, temperature=t).item() == pytest.approx(
            expected.item(), rel=1e-5
        )
        assert soft_target_loss(logits, targets, None, weight=w, temperature=t).item() == pytest.approx(
            kl.item(), rel=1e-5
        )
    assert soft_target_loss(logits, logits.softmax(-1)).abs().item() < 1e-6
    reverse = (logits.softmax(-1) * (logits.log_softmax(-1) - targets.log())).sum(-1).mean()
    assert soft_target_loss(logits, targets).item() != pytest.approx(reverse.item(), rel=1e-3)


def test_the_soft_term_mixes_into_training_loss_only(tiny_encoder, tmp_path):
    model, tokenizer = prepare(tiny_encoder, LABELS, method="head")
    args = FinetuneConfig(output_dir=str(tmp_path), model_name_or_path=tiny_encoder)
    trainer = TransferTrainer(model=model, args=args, soft_weight=0.25, temperature=2.0, processing_class=tokenizer)
    trainer._set_signature_columns_if_needed()
    assert SOFT_TARGETS in trainer._signature_columns  # kept although forward() does not take it
    batch = dict(tokenizer(POSITIVE[:2] + NEGATIVE[:2], padding=True, return_tensors="pt"))
    labels = torch.tensor([1, 1, 0, 0])
    targets = torch.tensor([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    for training in (True, False):  # in evaluation the soft term is off: the eval loss is plain CE
        model.train(training)
        torch.manual_seed(0)  # same dropout masks for the trainer's forward and the one here
        loss = trainer.compute_loss(model, {**batch, "labels": labels, SOFT_TARGETS: targets})
        torch.manual_seed(0)
        with torch.no_grad():
            logits = model(**batch).logits
        ce = F.cross_entropy(logits, labels)
        expected = soft_target_loss(logits, targets, labels, weight=0.25, temperature=2.0) if training else ce
        assert torch.allclose(loss.detach(), expected, atol=1e-5), training


@pytest.mark.parametrize(("kwargs", "message"), [({"soft_weight": 1.5}, "soft_weight=1.5"),
                                                 ({"temperature": 0.0}, "temperature=0.0")])  # fmt: skip
def test_out_of_range_settings_are_refused(tiny_encoder, tmp_path, kwargs, message):
    model, _ = prepare(tiny_encoder, LABELS, method="head")
    with pytest.raises(ValueError, match=message):
        TransferTrainer(model=model, args=FinetuneConfig(output_dir=str(tmp_path)), **kwargs)


def test_the_soft_term_pulls_predictions_to_the_targets(tiny_encoder, tmp_path):
    """Trained on soft targets alone (weight 1), the model's predictions move to them; with weight 0 the same
    rows and labels do not get there: the term is what moves them."""
    texts = POSITIVE + NEGATIVE
    targets = [[0.3, 0.7]] * len(texts)  # deliberately unlike the hard labels
    rows = Dataset.from_dict({"text": texts, "label": [1] * 8 + [0] * 8, SOFT_TARGETS: targets})

    def trained_kl(weight: float) -> float:
        model, tokenizer = prepare(tiny_encoder, LABELS, method="full", head_init="random")
        args = FinetuneConfig(output_dir=str(tmp_path / str(weight)), method="full", learning_rate=5e-3,
                              num_train_epochs=30, min_train_steps=0, per_device_train_batch_size=16,
                              disable_tqdm=True)  # fmt: skip
        TransferTrainer(model=model, args=args, train_dataset=tokenize(rows, tokenizer, 32), soft_weight=weight,
                        data_collator=DataCollatorWithPadding(tokenizer)).train()  # fmt: skip
        model.eval()
        with torch.no_grad():
            logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
        return soft_target_loss(logits, torch.tensor(targets)).item()

    pulled, hard = trained_kl(1.0), trained_kl(0.0)
    assert pulled < 0.02 < hard, (pulled, hard)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_head_learning_rate_gives_the_head_its_own_groups(tiny_encoder, tmp_path, method):
    model, _ = prepare(tiny_encoder, LABELS, method=method)
    trainable = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    for head_lr, expected in ((None, 1e-4), (1e-2, 1e-2)):
        args = FinetuneConfig(output_dir=str(tmp_path), method=method, learning_rate=1e-4, head_learning_rate=head_lr,
                              weight_decay=0.01)  # fmt: skip
        trainer = TransferTrainer(model=model, args=args)
        trainer.create_optimizer_and_scheduler(num_training_steps=10)
        lr_of = {id(p): g["initial_lr"] for g in trainer.optimizer.param_groups for p in g["params"]}  # peak (warm-up)
        assert sorted(lr_of) == sorted(trainable)  # every trainable parameter in exactly one group
        heads = [i for i, n in trainable.items() if "classifier" in n.split(".")]
        assert heads and all(lr_of[i] == expected for i in heads)
        assert all(lr_of[i] == 1e-4 for i in trainable if i not in heads)
        assert sorted(set(trainer.lr_scheduler.base_lrs)) == sorted({1e-4, expected})  # the schedule scales both
        decay_of = {id(p): g["weight_decay"] for g in trainer.optimizer.param_groups for p in g["params"]}
        assert {decay_of[i] for i in heads} == {0.01, 0.0}  # the head's weight decays, its bias does not
    head_only, _ = prepare(tiny_encoder, LABELS, method="head")  # its rate is learning_rate
    args = FinetuneConfig(output_dir=str(tmp_path), method="head", learning_rate=1e-4, head_learning_rate=1e-2)
    trainer = TransferTrainer(model=head_only, args=args)
    assert [g["lr"] for g in trainer.create_optimizer().param_groups] == [1e-4, 1e-4]


def _two_layer_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    model[1].requires_grad_(False)
    return model


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_weight_interpolation_callback(alpha):
    model = _two_layer_model()
    callback = WeightInterpolationCallback(alpha)
    callback.on_train_begin(None, None, None, model=model)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():  # "training" moves every weight by +1, the frozen layer by +5 (it must be left alone)
        model[0].weight.add_(1.0)
        model[0].bias.add_(1.0)
        model[1].weight.add_(5.0)
    callback.on_train_end(None, None, None, model=model)
    assert torch.allclose(model[0].weight, start["0.weight"] + alpha)
    assert torch.allclose(model[0].bias, start["0.bias"] + alpha)
    assert torch.allclose(model[1].weight, start["1.weight"] + 5.0)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_weight_interpolation_alpha_range(alpha):
    with pytest.raises(ValueError, match="wise_alpha"):
        WeightInterpolationCallback(alpha)


def test_evaluation_runs_in_length_order_and_returns_rows_in_dataset_order(tiny_encoder, tmp_path):
    """Batches go longest first (little padding), yet ``predict`` gives each row its own logits in the order the
    rows were given, the same as a model run on each row alone, and the metrics are those of that order."""
    texts = [" ".join(["good"] * n) + " film" for n in (1, 9, 3, 14, 2, 7, 5)]
    labels = [1, 0, 1, 0, 1, 0, 1]
    model, tokenizer = prepare(tiny_encoder, LABELS, method="full", head_init="random")
    rows = tokenize(Dataset.from_dict({"text": texts, "label": labels}), tokenizer, 64)
    args = FinetuneConfig(output_dir=str(tmp_path), per_device_eval_batch_size=3, report_to="none")
    trainer = TransferTrainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer),
                              processing_class=tokenizer, eval_dataset=rows,
                              compute_metrics=classification(2))  # fmt: skip
    sampler = trainer._get_eval_sampler(trainer._remove_unused_columns(rows))
    assert [len(rows[i]["input_ids"]) for i in sampler] == sorted((len(r) for r in rows["input_ids"]), reverse=True)
    output = trainer.predict(rows)
    model.eval()
    with torch.no_grad():
        alone = torch.cat([model(**tokenizer(t, return_tensors="pt")).logits for t in texts]).numpy()
    assert output.label_ids.tolist() == labels
    assert torch.allclose(torch.from_numpy(output.predictions), torch.from_numpy(alone), atol=1e-5)
    accuracy = float((alone.argmax(1) == labels).mean())
    assert output.metrics["test_accuracy"] == pytest.approx(accuracy)
    assert trainer.evaluate()["eval_accuracy"] == pytest.approx(accuracy)
    features = Dataset.from_dict({"sentence_embedding": [[0.0] * 4] * 3, "label": [0, 1, 0]})
    assert not isinstance(trainer._get_eval_sampler(features), type(sampler))  # no input_ids: the Trainer's order
