"""No code runs from a data file: prompt and card templates render in Jinja's sandbox and hostile ones are refused
when they load; YAML recipes and template files are read with ``yaml.safe_load``; texts are data, not Jinja."""

from __future__ import annotations

import json

import jinja2
import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard

from hf_transfer import model_card
from hf_transfer.cli.parsing import parse_with_config
from hf_transfer.cli.train import make_parser
from hf_transfer.errors import ConfigError
from hf_transfer.generate.card import DATASET_CARD_TEMPLATE, build_dataset_card
from hf_transfer.generate.prompts import TEMPLATES_DIR, build_prompts, check_templates, load_templates
from hf_transfer.model_card import MODEL_CARD_TEMPLATE, build_model_card, template_path

RESULTS = {"strategy": "finetune", "method": "full", "model": "minilm", "dataset": "bundled:sst2",
           "labels": ["negative", "positive"], "n_per_class": 8, "n_train": 16, "n_eval": 10, "accuracy": 0.75,
           "f1_macro": 0.74}  # fmt: skip


def payloads(target) -> dict[str, tuple[str, str]]:
    """Template bodies that write ``target`` if rendered unsandboxed, with what the refusal must name."""
    return {
        "self": (
            f"{{{{ self.__init__.__globals__.__builtins__.open('{target}', 'w').write('x') }}}}",
            "'__init__' (attribute 'self.__init__')",
        ),
        "lipsum": (
            f"{{{{ lipsum.__globals__['os'].system('touch {target}') }}}}",
            "'__globals__' (attribute 'lipsum.__globals__')",
        ),
        "cycler": (
            f"{{{{ cycler.__init__.__globals__.os.popen('touch {target}').read() }}}}",
            "'__init__' (attribute 'cycler.__init__')",
        ),
        "joiner": (
            f"{{{{ joiner.__init__.__globals__.os.system('touch {target}') }}}}",
            "'__init__' (attribute 'joiner.__init__')",
        ),
        "attr filter": (
            f"{{{{ (label | attr('__class__')).__mro__[1].__subclasses__() }}}}{target}",
            "'__class__' (argument of the filter 'attr')",
        ),
        "key": (f"{{{{ label['__class__'] }}}}{target}", """'__class__' (key "label['__class__']")"""),
        "namespace": (f"{{% set ns = namespace(x='{target}') %}}{{{{ ns.x }}}}", "'namespace' (a Jinja global"),
        "range": (f"{{{{ range(3) | list }}}}{target}", "'range' (a Jinja global"),
        "dict": (f"{{{{ dict(a='{target}') }}}}", "'dict' (a Jinja global"),
        "bare self": (f"{{{{ self }}}}{target}", "'self' (the template object"),
        "include": (f"{{% include '{target}' %}}", "'{% include %}'"),
    }


PAYLOAD_NAMES = list(payloads("x"))


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_hostile_prompt_template_is_refused_when_it_loads(tmp_path, name):
    target = tmp_path / "pwned"
    body, named = payloads(target)[name]
    file = tmp_path / "templates.yaml"
    file.write_text(yaml.safe_dump({"templates": [{"id": "t0", "text": "Write about {{ label }}. " + body}]}))
    with pytest.raises(ConfigError) as info:
        templates = load_templates(str(file))
        build_prompts(["good", "bad"], 1, templates, seed=0)  # only reached if loading let it through
    assert f"template 't0' in {file} uses {named}" in str(info.value)
    assert not target.exists()


@pytest.mark.parametrize("name", ["self", "lipsum"])
def test_hostile_jinja_file_is_refused(tmp_path, name):
    target = tmp_path / "pwned"
    file = tmp_path / "evil.jinja"
    file.write_text("{{ label }} " + payloads(target)[name][0])
    with pytest.raises(ConfigError, match="template 'evil' in .*evil.jinja uses"):
        load_templates(str(file))
    assert not target.exists()


@pytest.mark.parametrize(
    ("body", "stopped"),
    [
        ("{{ examples.append('x') }}", "'append' of a 'list'"),  # a mutating method: the immutable sandbox
        ("{{ label[('_' ~ '_class__')] }}", "'__class__' of a 'str'"),  # a key built at render time
        ("{{ '{0.__class__}'.format(label) }}", "'__class__' of a 'str'"),  # str.format reaching attributes
    ],
)
def test_what_the_static_check_cannot_see_the_sandbox_stops(body, stopped):
    templates = check_templates({"templates": [{"id": "sly", "text": "{{ label }} " + body}]}, source="/x/t.yaml")
    with pytest.raises(
        ConfigError, match=f"template 'sly' in /x/t.yaml was stopped by the template sandbox.*{stopped}"
    ):
        build_prompts(["good"], 1, templates, seed=0, seed_examples={"good": ["a fine film"]}, n_shots=1)


def test_attribute_may_shadow_a_jinja_global_but_not_self():
    data = {"templates": ["{{ label }} in {{ range }}"], "attributes": {"range": ["a few words"]}}
    [prompt] = build_prompts(["good"], 1, check_templates(data), seed=0)
    assert prompt.text == "good in a few words"
    with pytest.raises(ConfigError, match="'self' \\(the template object"):
        check_templates({"templates": ["{{ label }} {{ self }}"], "attributes": {"self": ["x"]}})


def _plain_jinja(text: str, **variables) -> str:
    """The renderer before the sandbox, as the reference output."""
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False).from_string(text).render(**variables)


def test_bundled_and_legit_templates_render_as_plain_jinja_did():
    from hf_transfer import sandbox

    bundled = [load_templates(p.stem) for p in sorted(TEMPLATES_DIR.glob("*.yaml"))]
    legit = check_templates(
        {
            "templates": [
                "{{ label | upper }}: {{ examples | join('; ') | lower }}",
                "{% for e in examples %}{{ loop.index }}. {{ e | trim }}{% if not loop.last %}\n{% endif %}"
                "{% endfor %}{% set n = examples | length %} {{ label }} x{{ n }} {{ style | default('?') }}",
                "{{ label }}{% if description %} ({{ description | title }}){% endif %}{{ ' ' ~ style }}",
            ],
            "attributes": {"style": ["dry"]},
        }
    )
    cases = [
        dict(
            label="very negative",
            description="",
            examples=[],
            length="one sentence",
            style="dry",
            voice="me",
            types="very negative, positive",
        ),  # fmt: skip
        dict(
            label="sports",
            description="games and teams",
            examples=[" Goal! ", "Final score 2-1"],
            length="two sentences",
            style="formal",
            voice="a critic",
            types="sports, politics",
        ),  # fmt: skip
    ]
    for templates in [*bundled, legit]:
        for template in templates.templates:
            for variables in cases:
                expected = _plain_jinja(template.text, **variables)
                assert sandbox.render(template.text, "test", variables) == expected, template.id


def test_bundled_prompts_are_built_the_same():
    """build_prompts through the sandbox gives the texts plain Jinja gives for the same draws."""
    from hf_transfer.data import readable_label

    templates = load_templates("default")
    seeds = {"positive": ["great film", "loved it"], "neutral": ["it was ok"]}
    prompts = build_prompts(["very_negative", "positive", "neutral"], 8, templates, seed=3, seed_examples=seeds,
                            descriptions={"positive": "a good review"})  # fmt: skip
    by_id = {t.id: t.text for t in templates.templates}
    for prompt in prompts:
        for examples in _example_orders(seeds.get(prompt.label, [])):
            variables = dict(label=readable_label(prompt.label), examples=examples, **prompt.attributes,
                             description={"positive": "a good review"}.get(prompt.label, ""))  # fmt: skip
            if _plain_jinja(by_id[prompt.template_id], **variables).strip() == prompt.text:
                break
        else:
            pytest.fail(f"prompt {prompt.index} differs from plain Jinja's rendering")


def _example_orders(pool: list[str]) -> list[list[str]]:
    import itertools

    return [list(p) for p in itertools.permutations(pool, min(2, len(pool)))] or [[]]


def test_texts_and_descriptions_are_data_not_templates(tmp_path):
    """Seed examples, label names and descriptions are values: a Jinja payload in them is printed, not run."""
    payload = f"{{{{ lipsum.__globals__['os'].system('touch {tmp_path / 'pwned'}') }}}}"
    templates = load_templates("default")
    [prompt] = build_prompts(["good"], 1, templates, seed=0, seed_examples={"good": [payload]}, n_shots=1,
                             descriptions={"good": payload})  # fmt: skip
    assert payload in prompt.text
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------------------------------- cards


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_hostile_card_template_is_refused(tmp_path, name):
    target = tmp_path / "pwned"
    body = payloads(target)[name][0].replace("label", "model_name")
    named = payloads(target)[name][1].replace("label", "model_name")
    card = tmp_path / "card.md"
    card.write_text("---\n{{ card_data }}\n---\n\n# {{ model_name }}\n\n" + body + "\n")
    for check in (lambda: model_card.check_card_template(card), lambda: build_model_card(RESULTS, template=card)):
        with pytest.raises(ConfigError) as info:
            check()
        assert f"card template {str(card)!r} uses {named}" in str(info.value)
    assert not target.exists()


def test_card_sandbox_raises_where_a_lenient_template_would_print_nothing(tmp_path):
    card = tmp_path / "card.md"
    card.write_text("---\n{{ card_data }}\n---\n\n{{ model_name[('_' ~ '_class__')] }}\n")
    model_card.check_card_template(card)  # nothing static to see
    with pytest.raises(ConfigError, match="card template .*card.md' was stopped by the template sandbox"):
        build_model_card(RESULTS, template=card)


def test_packaged_card_templates_pass_the_check():
    for name in (MODEL_CARD_TEMPLATE, DATASET_CARD_TEMPLATE):
        assert model_card.check_card_template(name) == template_path(name)


def _capture_card_inputs(monkeypatch) -> list:
    calls = []
    render = model_card.render_card

    def capture(card_class, card_data, path, variables):
        calls.append((card_class, card_data, path, dict(variables)))
        return render(card_class, card_data, path, variables)

    monkeypatch.setattr(model_card, "render_card", capture)
    return calls


def test_cards_are_byte_identical_to_huggingface_hubs_from_template(tmp_path, monkeypatch):
    from datasets import ClassLabel, Dataset, Features, Value

    from hf_transfer.finetune import FinetuneConfig
    from hf_transfer.generate import GenerateConfig

    calls = _capture_card_inputs(monkeypatch)
    config = FinetuneConfig(output_dir=str(tmp_path / "run"), method="lora", peft_kwargs={"r": 8},
                            label_descriptions={"negative": "a bad movie"})  # fmt: skip
    cards = [build_model_card(RESULTS, config, peft_config={"r": 8}),
             build_model_card({**RESULTS, "n_per_class": 0}, saved_as_adapter=True)]  # fmt: skip
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    dataset = Dataset.from_dict({"text": ["bad", "great"], "label": [0, 1]}, features=features)
    dataset.info.description = json.dumps({"generated": 4, "kept": 2, "removed": {"length": 2}})
    generate = GenerateConfig(target_labels=["negative", "positive"], output_dir=str(tmp_path / "gen"),
                              label_descriptions={"negative": "a bad review"})  # fmt: skip
    cards.append(build_dataset_card(dataset, generate))
    assert [call[0] for call in calls] == [ModelCard, ModelCard, DatasetCard]
    for card, (card_class, card_data, path, variables) in zip(cards, calls):
        expected = card_class.from_template(card_data, template_path=str(path), **variables)
        assert str(card) == str(expected)
        assert card.data.to_dict() == expected.data.to_dict()


# ---------------------------------------------------------------------------------------------- YAML files

PYTHON_TAG = "!!python/object/apply:os.system ['touch {target}']"


def test_recipe_with_a_python_tag_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"method: head\noutput_dir: {PYTHON_TAG.format(target=target)}\n")
    with pytest.raises(ConfigError, match="recipe.yaml' is not valid YAML.*python/object/apply:os.system"):
        parse_with_config(make_parser("finetune"), ["--config", str(recipe)])
    recipe.write_text(f"{PYTHON_TAG.format(target=target)}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_with_config(make_parser("finetune"), ["--config", str(recipe)])
    assert not target.exists()


def test_template_yaml_with_a_python_tag_is_refused(tmp_path):
    target = tmp_path / "pwned"
    file = tmp_path / "templates.yaml"
    file.write_text(f"templates:\n  - {PYTHON_TAG.format(target=target)}\n")
    with pytest.raises(ConfigError, match="templates.yaml' is not valid YAML"):
        load_templates(str(file))
    assert not target.exists()


def test_mapping_options_are_json_not_yaml_or_python(tmp_path):
    """label_map / peft_kwargs / label_descriptions given as text are parsed as JSON only."""
    from hf_transfer.config import as_mapping

    target = tmp_path / "pwned"
    with pytest.raises(ConfigError, match="label_map must be a mapping, a JSON object string or a .json/.yaml file"):
        as_mapping("label_map", PYTHON_TAG.format(target=target))
    with pytest.raises(ConfigError, match="label_map must be a mapping, a JSON object string or a .json/.yaml file"):
        as_mapping("label_map", f"{{'a': __import__('os').system('touch {target}')}}")
    file = tmp_path / "map.yaml"  # a mapping file is read with yaml.safe_load: a Python tag is an error, not a call
    file.write_text(f"a: {PYTHON_TAG.format(target=target)}\n")
    with pytest.raises(ConfigError, match=r"label_map: cannot read .*map.yaml' \(ConstructorError"):
        as_mapping("label_map", str(file))
    assert not target.exists()
    (tmp_path / "ok.json").write_text('{"joy": ["joy", "love"]}')
    assert as_mapping("label_map", str(tmp_path / "ok.json")) == {"joy": ["joy", "love"]}
    with pytest.raises(ConfigError, match="is not a file"):
        as_mapping("label_map", str(tmp_path / "missing.json"))
