"""Hub publishing, offline: settings checked before training, the push handed to ``HfApi`` (intercepted at
``create_repo`` / ``upload_folder``), our card pushed, and the token in no file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers
from huggingface_hub import HfApi, ModelCard, constants

from hf_transfer import ConfigError, DataArguments
from hf_transfer.finetune import FinetuneConfig, run_finetune
from hf_transfer.hub import PushTarget, check_push, check_repo_id, push_dataset, push_folder, trainer_args

FAKE_TOKEN = "hf_FakeTokenForTests0123456789abcdef"


@pytest.fixture
def online(monkeypatch):
    """Pretend the Hub is reachable (nothing below HfApi's create_repo/upload_folder ever runs)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


@pytest.fixture
def hub_calls(monkeypatch):
    """Record HfApi.create_repo / upload_folder calls, with a snapshot of the folder at upload time."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        calls.append(("upload_folder", kwargs["repo_id"], {**kwargs, "files": files}))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def _no_weights(monkeypatch):
    fail = lambda *a, **k: pytest.fail("a model loaded before the bad option was reported")  # noqa: E731
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", fail)
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", fail)


@pytest.mark.parametrize("repo_id", ["me/model", "model", "My-Org/sst2_lora.v2"])
def test_valid_repo_ids(repo_id):
    assert check_repo_id(repo_id) == repo_id


@pytest.mark.parametrize(
    ("repo_id", "message"),
    [
        ("me/team/model", "more than one '/'"),
        ("https://huggingface.co/me/model", "URL"),
        ("me/my model", "not a Hub repo id"),
        ("me/model--x", "not a Hub repo id"),
        ("", "empty"),
    ],
)
def test_bad_repo_ids(repo_id, message):
    with pytest.raises(ConfigError, match=message):
        check_repo_id(repo_id)


def test_repo_id_is_derived_from_output_dir_or_refused(online, tmp_path):
    assert check_push(True, None, str(tmp_path / "sst2-lora")) == "sst2-lora"
    assert check_push(False, None, None) is None
    with pytest.raises(ConfigError, match="hub_model_id is not"):
        check_push(True, None, None)
    with pytest.raises(ConfigError, match="hub_model_id is not"):
        check_push(True, None, str(tmp_path / "bad name!"))
    with pytest.raises(ConfigError, match="more than one"):  # checked even when not pushing: a typo shows early
        check_push(False, "a/b/c", None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"push_to_hub": True, "hub_model_id": "me/x/y"}, "more than one '/'"),
        ({"push_to_hub": True, "hub_model_id": "me/tiny"}, "HF_HUB_OFFLINE=1"),  # tests run offline
    ],
)
def test_bad_push_settings_fail_before_any_model_loads(tiny_encoder, sentiment_dir, tmp_path, monkeypatch,
                                                       options, message):  # fmt: skip
    config = FinetuneConfig(output_dir=str(tmp_path / "run"), model_name_or_path=tiny_encoder, **options)
    _no_weights(monkeypatch)
    with pytest.raises(ConfigError, match=message):
        run_finetune(config, DataArguments(dataset=str(sentiment_dir), n_per_class=2))


def test_missing_card_template_fails_before_any_model_loads(tiny_encoder, sentiment_dir, tmp_path, monkeypatch):
    import hf_transfer.model_card as model_card

    monkeypatch.setattr(model_card, "template_dirs", lambda: [tmp_path / "nowhere"])
    _no_weights(monkeypatch)
    config = FinetuneConfig(output_dir=str(tmp_path / "run"), model_name_or_path=tiny_encoder)
    with pytest.raises(ConfigError, match="Card template 'model_card.md' not found"):
        run_finetune(config, DataArguments(dataset=str(sentiment_dir), n_per_class=2))


def test_labelmap_push_offline_fails_before_the_source_model_loads(sentiment_dir, tmp_path, monkeypatch):
    from transformers import BertConfig

    from hf_transfer.labelmap import LabelMapConfig, run_labelmap

    source = tmp_path / "source"
    BertConfig(id2label={0: "negative", 1: "positive"}).save_pretrained(source)  # config only: no weights
    config = LabelMapConfig(
        output_dir=str(tmp_path / "out"),
        source_model=str(source),
        push_to_hub=True,
        hub_model_id="me/student",
        label_map={"negative": "negative", "positive": "positive"},
    )
    _no_weights(monkeypatch)
    with pytest.raises(ConfigError, match="offline"):
        run_labelmap(config, DataArguments(dataset=str(sentiment_dir)))


def test_trainer_args_withhold_push_settings_and_token(tmp_path):
    config = FinetuneConfig(output_dir=str(tmp_path), push_to_hub=True, hub_model_id="me/x", hub_token=FAKE_TOKEN)
    args = trainer_args(config)
    assert (args.push_to_hub, args.hub_token, args.learning_rate) == (False, None, config.learning_rate)
    assert (config.push_to_hub, config.hub_token) == (True, FAKE_TOKEN)  # the caller's config is untouched
    plain = FinetuneConfig(output_dir=str(tmp_path))
    assert trainer_args(plain) is plain


def test_finetune_push_hands_our_folder_to_hfapi_and_writes_no_token(
    tiny_encoder, sentiment_dir, tmp_path, online, hub_calls, monkeypatch, caplog, capsys
):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    out = tmp_path / "run"
    config = FinetuneConfig(output_dir=str(out), model_name_or_path=tiny_encoder, method="lora", merge_adapter=False,
                            num_train_epochs=1, disable_tqdm=True, save_strategy="epoch", push_to_hub=True,
                            hub_model_id="me/tiny-sst2", hub_token=FAKE_TOKEN, hub_private_repo=True)  # fmt: skip
    with caplog.at_level("DEBUG"):
        results = run_finetune(config, DataArguments(dataset=str(sentiment_dir), n_per_class=2))

    # one create_repo (after training, not in Trainer.__init__), one upload of the saved folder
    assert [c[0] for c in hub_calls] == ["create_repo", "upload_folder"]
    _, repo_id, kwargs = hub_calls[0]
    assert repo_id == "me/tiny-sst2" and kwargs["token"] == FAKE_TOKEN and kwargs["private"] is True
    _, repo_id, upload = hub_calls[1]
    assert repo_id == "me/tiny-sst2" and Path(upload["folder_path"]) == out and upload["token"] == FAKE_TOKEN
    assert "checkpoint-*" in upload["ignore_patterns"]
    # what was uploaded is our card, with the run's numbers, and the adapter that loads from the repo
    card_file = tmp_path / "pushed_README.md"
    card_file.write_bytes(upload["files"]["README.md"])
    card = ModelCard.load(card_file)
    assert "hf-transfer" in card.data.tags and card.data.library_name == "peft"
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["accuracy"] == results["accuracy"]
    assert card.data.model_name == "me/tiny-sst2"
    assert json.loads(upload["files"]["adapter_config.json"])["base_model_name_or_path"] == "me/tiny-sst2"
    # the token is nowhere: not in any file (checkpoints' training_args.bin included), not in logs or output
    assert any(p.name == "training_args.bin" for p in out.rglob("*"))
    for path in out.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path
    captured = capsys.readouterr()
    assert FAKE_TOKEN not in captured.out + captured.err + caplog.text


def test_a_folder_holding_the_token_is_not_uploaded(tmp_path, online, hub_calls):
    (tmp_path / "notes.txt").write_text(f"token={FAKE_TOKEN}")
    with pytest.raises(ConfigError, match="contains the Hub token"):
        push_folder(tmp_path, PushTarget("me/x", token=FAKE_TOKEN))
    assert hub_calls == []
    assert FAKE_TOKEN not in repr(PushTarget("me/x", token=FAKE_TOKEN))


def test_push_folder_refuses_offline(tmp_path, hub_calls):
    with pytest.raises(ConfigError, match="offline"):
        push_folder(tmp_path, PushTarget("me/x"))
    assert hub_calls == []


def test_generated_dataset_push_stages_parquet_and_card(tmp_path, online, hub_calls):
    from datasets import ClassLabel, Dataset, Features, Value, load_dataset

    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    dataset = Dataset.from_dict({"text": ["bad", "great"], "label": [0, 1]}, features=features)
    card = tmp_path / "card.md"
    card.write_text("---\ntags:\n- hf-transfer\n---\n# synthetic\n")
    repo = push_dataset(dataset, card, PushTarget("me/synthetic", repo_type="dataset"), staging_dir=tmp_path / "hub")
    assert repo == "me/synthetic"
    (_, _, create), (_, _, upload) = hub_calls
    assert create["repo_type"] == "dataset" and upload["repo_type"] == "dataset"
    assert set(upload["files"]) == {"README.md", "data/train-00000-of-00001.parquet"}
    assert upload["files"]["README.md"] == card.read_bytes()
    reread = load_dataset("parquet", data_files=str(tmp_path / "hub" / "data" / "*.parquet"), split="train")
    assert reread.features["label"].names == ["negative", "positive"] and reread["text"] == ["bad", "great"]


def test_generate_config_push_options(tmp_path):
    from hf_transfer.generate import GenerateConfig

    with pytest.raises(ConfigError, match="not a Hub repo id"):
        GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), hub_model_id="me/bad name")
    config = GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), hub_token=FAKE_TOKEN)
    assert FAKE_TOKEN not in repr(config) and "<HUB_TOKEN>" in repr(config)


def test_generate_push_offline_fails_before_generating(tmp_path, monkeypatch):
    from hf_transfer.generate import GenerateConfig, pipeline, run_generate

    monkeypatch.setattr(pipeline, "generate_dataset", lambda *a, **k: pytest.fail("generated before the check"))
    config = GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), push_to_hub=True,
                            hub_model_id="me/synthetic")  # fmt: skip
    with pytest.raises(ConfigError, match="offline"):
        run_generate(config)


def test_run_generate_writes_the_dataset_card_and_pushes_it(tmp_path, online, hub_calls, monkeypatch):
    """The generate strategy's wiring, with generation itself stubbed (tests/generate covers it)."""
    from datasets import Dataset, DatasetDict, load_from_disk
    from huggingface_hub import DatasetCard

    from hf_transfer.generate import GenerateConfig, pipeline, run_generate

    def fake_generate_dataset(config, **kwargs):
        rows = {"text": ["a fine film", "a bad film", "a dull film"], "label": [1, 0, 0], "generator": ["g"] * 3,
                "template_id": ["t"] * 3, "attributes": ["{}"] * 3, "seed": [5] * 3, "row_index": [0, 1, 2],
                "new_tokens": [3] * 3, "consistency": [0.9] * 3}  # fmt: skip
        dataset = Dataset.from_dict(rows, features=pipeline.dataset_features(config.labels))
        dataset.info.description = json.dumps({"generated": 5, "kept": 3, "removed": {"length": 2}})
        dataset.save_to_disk(str(tmp_path / "gen" / "dataset"))
        return dataset

    monkeypatch.setattr(pipeline, "generate_dataset", fake_generate_dataset)
    config = GenerateConfig(target_labels=["negative", "positive"], output_dir=str(tmp_path / "gen"),
                            push_to_hub=True, hub_model_id="me/synthetic-sst2", hub_token=FAKE_TOKEN)  # fmt: skip
    results = run_generate(config)
    assert results["hub_dataset_id"] == "me/synthetic-sst2"
    card = DatasetCard.load(tmp_path / "gen" / "dataset" / "README.md")
    assert "| length | 3 to 80 words | 2 |" in card.text and "| `negative` | 2 |" in card.text
    assert 'load_dataset("me/synthetic-sst2"' in card.text
    assert isinstance(load_from_disk(str(tmp_path / "gen" / "dataset")), Dataset | DatasetDict)  # still loads
    (_, repo, create), (_, _, upload) = hub_calls
    assert repo == "me/synthetic-sst2" and create["repo_type"] == "dataset" and create["token"] == FAKE_TOKEN
    assert upload["files"]["README.md"] == (tmp_path / "gen" / "dataset" / "README.md").read_bytes()
    for path in (tmp_path / "gen").rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_a_failed_push_prints_the_results_and_folder_first_then_the_cause(
    tiny_encoder, sentiment_dir, tmp_path, online, monkeypatch, capsys
):
    from hf_transfer.cli.train import main

    def unreachable(self, repo_id, **kwargs):
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    out = tmp_path / "run"
    argv = ["--dataset", str(sentiment_dir), "--model_name_or_path", tiny_encoder, "--method", "full",
            "--n_per_class", "2", "--num_train_epochs", "1", "--disable_tqdm", "true", "--output_dir", str(out),
            "--push_to_hub", "true", "--hub_model_id", "me/tiny"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main("finetune", argv)
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out[captured.out.index('{\n  "strategy"') :])  # after the Trainer's logs
    assert summary["accuracy"] == json.loads((out / "results.json").read_text())["accuracy"]
    folder_line = captured.err.index(f"Output folder: {out}")
    cause = captured.err.index("error: pushing")
    assert folder_line < cause and "ConnectionError: Failed to resolve" in captured.err[cause:]
    assert "Traceback" not in captured.err
