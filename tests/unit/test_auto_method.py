"""method='auto': cross-validation on the labelled rows only picks the method, records it, and resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_transfer.config import DataArguments
from hf_transfer.errors import ConfigError
from hf_transfer.finetune import FinetuneConfig, run_finetune
from hf_transfer.finetune.auto import AUTO_STATE_FILE, choose_method, cv_sample
from hf_transfer.labelmap import LabelMapConfig


def auto_config(tmp_path, **overrides) -> FinetuneConfig:
    values = dict(output_dir=str(tmp_path / "run"), auto_methods=["head", "lora", "full"], auto_folds=2, seed=0)
    values.update(overrides)
    return FinetuneConfig(**values)


def scripted(right_share: dict[str, float], calls: list | None = None, confidence: dict | None = None):
    """A train_and_predict whose fold models get ``right_share[method]`` of the held-out rows right."""

    def train_and_predict(config, rows, held_out):
        if calls is not None:
            calls.append((config.method, np.array(rows), np.array(held_out), config.learning_rate))
        truth = LABELS_OF_ROWS[held_out]
        n_right = round(right_share[config.method] * len(held_out))
        predicted = np.where(np.arange(len(held_out)) < n_right, truth, (truth + 1) % 2)
        logits = np.zeros((len(held_out), 2))
        logits[np.arange(len(held_out)), predicted] = (confidence or {}).get(config.method, 1.0)
        return logits

    return train_and_predict


LABELS_OF_ROWS = np.array([0, 1] * 8)  # 16 real rows, 8 per label


def test_folds_hold_out_real_rows_only_and_train_on_the_rest(tmp_path):
    calls = []
    # 16 real rows repeated twice (rows 0-31), then 4 extra rows (32-35)
    choice = choose_method(auto_config(tmp_path), LABELS_OF_ROWS, 16, 2, 36,
                           scripted({"head": 0.5, "lora": 1.0, "full": 1.0}, calls))  # fmt: skip
    # the reference (full, listed last) first; head and lora are not ahead of it after one fold: no second
    assert [c[0] for c in calls] == ["full", "full", "head", "lora"]
    assert [c[3] for c in calls] == [2e-5, 2e-5, 1e-2, 5e-4]  # each at its own default rate
    for _, rows, held_out, _ in calls:
        assert set(held_out) <= set(range(16)) and len(held_out) == 8
        assert np.bincount(LABELS_OF_ROWS[held_out]).tolist() == [4, 4]  # stratified by label
        real = set(rows[rows < 16])
        assert not real & set(held_out) and real | set(held_out) == set(range(16))
        assert set(rows[(rows >= 16) & (rows < 32)] - 16) == real  # the repeats of the same rows, never held out's
        assert set(rows[rows >= 32]) == {32, 33, 34, 35}  # extra rows always train
    held = [set(c[2]) for c in calls[:2]]
    assert held[0] | held[1] == set(range(16))
    assert choice.chosen == "full" and choice.reference == "full" and choice.folds == 2 and choice.rows == 16
    assert [(c.method, c.accuracy, c.folds_trained, c.stopped_early) for c in choice.candidates] == [
        ("full", 1.0, 2, False), ("head", 0.5, 1, True), ("lora", 1.0, 1, True)]  # fmt: skip
    assert "the reference; none clearly ahead" in choice.reason


def test_cross_validation_uses_a_label_stratified_sample_of_at_most_auto_max_rows(tmp_path):
    labels = np.array([0] * 60 + [1] * 18 + [2] * 2)  # 80 real rows, then 5 extra rows (80-84)
    calls = []

    def train_and_predict(config, rows, held_out):
        calls.append((np.array(rows), np.array(held_out)))
        return np.eye(3)[labels[held_out]]  # every candidate right on every row: the reference stays

    choice = choose_method(auto_config(tmp_path, auto_max_rows=20), labels, 80, 1, 85, train_and_predict)
    sample = set(np.concatenate([calls[0][1], calls[1][1]]))  # the reference's two folds hold out the sample
    # 20 spread in proportion (15 / 5 / 0), plus one row of the label too rare to get one
    assert len(sample) == choice.rows == 21 and choice.sampled_from == 80
    assert np.bincount(labels[sorted(sample)]).tolist() == [15, 5, 1]
    for rows, held_out in calls:
        assert set(rows[rows < 80]) | set(held_out) == sample and not set(rows) & set(held_out)
        assert set(rows[rows >= 80]) == set(range(80, 85))  # extra rows always train
    assert "cross-validated on 21 of the 80 labelled rows (auto_max_rows)" in choice.reason
    assert choice.as_dict()["sampled_from"] == 80
    uncapped = choose_method(auto_config(tmp_path / "all", auto_max_rows=0), labels, 80, 1, 85, train_and_predict)
    assert uncapped.rows == 80 and uncapped.sampled_from is None


def test_cv_sample_is_seeded_proportional_and_keeps_every_label():
    labels = np.array([0] * 900 + [1] * 99 + [2])
    sample = cv_sample(labels, 100, seed=3)
    assert np.array_equal(sample, cv_sample(labels, 100, seed=3)) and np.all(np.diff(sample) > 0)
    assert not np.array_equal(sample, cv_sample(labels, 100, seed=4))
    counts = np.bincount(labels[sample], minlength=3)
    assert abs(counts[0] - 90) <= 1 and abs(counts[1] - 10) <= 1 and counts[2] == 1
    assert np.array_equal(cv_sample(labels, 0, seed=3), np.arange(1000))
    assert np.array_equal(cv_sample(labels, 1000, seed=3), np.arange(1000))


@pytest.mark.parametrize(
    "lora_share, confidence, chosen",
    [
        (0.5, {"lora": 5.0}, "full"),  # a tie, however sure LoRA is of its rows: the reference stays
        (0.625, {}, "full"),  # 10 of 16 vs 8 of 16: ahead, within 2 standard errors
        (1.0, {}, "lora"),  # 16 of 16 vs 8 of 16: clearly ahead
    ],
)
def test_only_a_clear_lead_replaces_the_reference(tmp_path, lora_share, confidence, chosen):
    choice = choose_method(auto_config(tmp_path, auto_methods=["lora", "full"]), LABELS_OF_ROWS, 16, 1, 16,
                           scripted({"lora": lora_share, "full": 0.5}, confidence=confidence))  # fmt: skip
    assert choice.chosen == chosen and choice.reference == "full"


def test_among_clear_leaders_ties_go_to_the_higher_log_likelihood(tmp_path):
    confident = {"head": 1.0, "lora": 5.0}  # both clearly ahead of full and as often right; lora surer of it
    choice = choose_method(auto_config(tmp_path), LABELS_OF_ROWS, 16, 1, 16,
                           scripted({"head": 1.0, "lora": 1.0, "full": 0.0}, confidence=confident))  # fmt: skip
    assert choice.chosen == "lora" and "clearly ahead of the reference" in choice.reason


def test_the_reference_is_the_last_candidate_listed(tmp_path):
    choice = choose_method(auto_config(tmp_path, auto_methods=["head", "lora"]), LABELS_OF_ROWS, 16, 1, 16,
                           scripted({"head": 0.625, "lora": 0.5}))  # fmt: skip
    assert choice.reference == "lora" and choice.chosen == "lora"


def test_a_candidate_not_ahead_stops_and_one_ahead_trains_every_fold(tmp_path):
    calls = []
    config = auto_config(tmp_path, auto_folds=4)
    choice = choose_method(config, LABELS_OF_ROWS, 16, 1, 16,
                           scripted({"head": 1.0, "lora": 0.0, "full": 0.5}, calls))  # fmt: skip
    methods = [c[0] for c in calls]
    assert methods.count("full") == 4 and methods.count("head") == 4  # the reference, and a candidate ahead
    assert methods.count("lora") == 1  # 0 of 4 right against 2 of 4: stopped after one fold
    lora = next(c for c in choice.candidates if c.method == "lora")
    assert lora.stopped_early and lora.rows_scored == 4
    assert choice.chosen == "head"  # 16 of 16 against 8 of 16: clearly ahead


@pytest.mark.parametrize(
    "head_share, chosen",
    [
        (1.0, "head"),  # 16 of 16 vs 8 of 16: clearly ahead
        (0.625, "full"),  # 10 of 16 vs 8 of 16: within 2 standard errors
    ],
)
def test_the_head_is_chosen_only_when_clearly_ahead(tmp_path, head_share, chosen):
    choice = choose_method(auto_config(tmp_path, auto_methods=["head", "full"]), LABELS_OF_ROWS, 16, 1, 16,
                           scripted({"head": head_share, "full": 0.5}))  # fmt: skip
    assert choice.chosen == chosen


def test_no_labelled_rows_takes_the_cheapest_without_training(tmp_path):
    choice = choose_method(auto_config(tmp_path), np.array([], int), 0, 1, 0, scripted({}))
    assert choice.chosen == "head" and choice.candidates == [] and "no labelled rows" in choice.reason


def test_a_killed_run_resumes_at_the_next_candidate(tmp_path):
    state = tmp_path / AUTO_STATE_FILE
    fingerprint = {"options": {"seed": 0}}

    class Killed(Exception):
        pass

    def killed_at_lora(config, rows, held_out):
        if config.method == "lora":
            raise Killed
        return scripted({"full": 0.5, "head": 1.0})(config, rows, held_out)

    with pytest.raises(Killed):
        choose_method(auto_config(tmp_path), LABELS_OF_ROWS, 16, 1, 16, killed_at_lora,
                      state_file=state, fingerprint=fingerprint)  # fmt: skip
    assert [c["method"] for c in json.loads(state.read_text())["candidates"]] == ["full", "head"]
    calls = []
    choice = choose_method(auto_config(tmp_path), LABELS_OF_ROWS, 16, 1, 16,
                           scripted({"head": 0.0, "lora": 1.0, "full": 0.0}, calls),
                           state_file=state, fingerprint=fingerprint)  # fmt: skip
    assert [c[0] for c in calls] == ["lora", "lora"]  # full and head are not trained again
    # head and lora are both clearly ahead of full with 16 of 16 and tie: the first of them
    assert [c.accuracy for c in choice.candidates] == [0.5, 1.0, 1.0] and choice.chosen == "head"
    with pytest.raises(ConfigError, match=r"another run's method='auto'.*differs in: options"):
        choose_method(auto_config(tmp_path), LABELS_OF_ROWS, 16, 1, 16, scripted({}),
                      state_file=state, fingerprint={"options": {"seed": 1}})  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(learning_rate=1e-3), "learning_rate=0.001 is set with method='auto'"),
        (dict(auto_methods=["head", "lorra"]), "'lorra' is not one"),
        (dict(auto_methods=["head", "head"]), "list distinct methods"),
        (dict(auto_methods=[]), "list distinct methods"),
        (dict(auto_folds=1), "auto_folds=1 must be >= 2"),
        (dict(auto_max_rows=-1), "auto_max_rows=-1 must be >= 0"),
        (dict(peft_kwargs={"rr": 8}), "LoraConfig (method='lora') does not take: 'rr'"),
    ],
)
def test_auto_config_is_checked_before_anything_loads(tmp_path, kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        auto_config(tmp_path, **kwargs)


def test_auto_is_the_finetune_default_and_finetune_only(tmp_path):
    assert FinetuneConfig(output_dir=str(tmp_path)).method == "auto"
    with pytest.raises(ConfigError, match="only finetune has"):
        LabelMapConfig(output_dir=str(tmp_path), source_model="x", method="auto")


def test_run_finetune_auto_trains_the_winner_and_records_the_choice(tmp_path, tiny_model_dir, target_dir):
    config = auto_config(tmp_path, model_name_or_path=tiny_model_dir, num_train_epochs=1, min_train_steps=4,
                         per_device_train_batch_size=12, max_length=16, disable_tqdm=True, use_cpu=True,
                         logging_strategy="no")  # fmt: skip
    results = run_finetune(config, DataArguments(dataset=str(target_dir), n_per_class=4))
    selection = results["method_selection"]
    assert results["method"] == selection["chosen"] in ("head", "lora", "full")
    assert [c["method"] for c in selection["candidates"]] == ["full", "head", "lora"]  # the reference first
    assert selection["rows"] == 12 and all(c["rows_scored"] in (6, 12) for c in selection["candidates"])
    out = tmp_path / "run"
    assert json.loads((out / "results.json").read_text())["method_selection"] == selection
    card = (out / "README.md").read_text()
    assert "How the method was chosen" in card and f"| {selection['chosen']} (chosen) |" in card
    assert json.loads((out / AUTO_STATE_FILE).read_text())["candidates"] == selection["candidates"]
    # the saved model is the winner's: a head-only or full model, or the merged LoRA model
    assert json.loads((out / "config.json").read_text())["architectures"] == ["TransferForSequenceClassification"]
    # rerun as a resume: the cross-validation is read back, not trained again
    again = run_finetune(auto_config(tmp_path, model_name_or_path=tiny_model_dir, num_train_epochs=1,
                                     min_train_steps=4, per_device_train_batch_size=12, max_length=16,
                                     disable_tqdm=True, use_cpu=True, logging_strategy="no",
                                     overwrite_output_dir=False, resume_from_checkpoint="last"),
                         DataArguments(dataset=str(target_dir), n_per_class=4))  # fmt: skip
    assert again["method_selection"]["candidates"] == selection["candidates"]


def test_a_capped_cross_validation_is_recorded_in_results_and_card(tmp_path, tiny_model_dir, target_dir):
    config = auto_config(tmp_path, model_name_or_path=tiny_model_dir, num_train_epochs=1, min_train_steps=2,
                         per_device_train_batch_size=12, max_length=16, disable_tqdm=True, use_cpu=True,
                         logging_strategy="no", auto_methods=["head", "full"], auto_max_rows=8)  # fmt: skip
    results = run_finetune(config, DataArguments(dataset=str(target_dir), n_per_class=4))
    selection = results["method_selection"]
    assert selection["rows"] < 12 == selection["sampled_from"] and results["n_train"] == 12  # the winner: all rows
    card = (tmp_path / "run" / "README.md").read_text()
    assert f"folds of the {selection['rows']} labelled training rows (a label-stratified sample of the 12" in card


@pytest.mark.parametrize(
    "method, head_learning_rate, expected",
    [("full", None, 1e-2), ("lora", None, 1e-2), ("head", None, None), ("full", 3e-4, 3e-4)],
)
def test_a_new_head_trains_at_head_only_rate_unless_set(tmp_path, method, head_learning_rate, expected):
    config = FinetuneConfig(output_dir=str(tmp_path), method=method, head_learning_rate=head_learning_rate)
    assert config.with_head_rate().head_learning_rate == expected
    assert config.head_learning_rate == head_learning_rate  # a copy: the config itself keeps what was given


def test_single_label_runs_record_the_head_rate_they_trained_with(tmp_path, tiny_model_dir, target_dir):
    config = FinetuneConfig(output_dir=str(tmp_path / "run"), model_name_or_path=tiny_model_dir, method="full",
                            max_steps=2, max_length=16, disable_tqdm=True, logging_strategy="no")  # fmt: skip
    run_finetune(config, DataArguments(dataset=str(target_dir), n_per_class=2))
    assert "| `head_learning_rate` | 0.01 |" in (tmp_path / "run" / "README.md").read_text()
