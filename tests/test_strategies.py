import pytest
import torch

from ftray.errors import FtrayError
from ftray.models import load_task_model, load_tokenizer
from ftray.strategies import STRATEGIES, get_strategy
from ftray.tasks import get_task

BERT_LABELS = ["neg", "pos"]
TAGS = ["O", "B-PER", "I-PER"]


def prepared(model_dir, kind, task="sequence-classification", labels=BERT_LABELS, **knobs):
    strategy = get_strategy(kind)
    config = strategy.config_type(**knobs)
    model = load_task_model(str(model_dir), task, labels)
    return strategy.apply(model, config, task), strategy, config


def trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_the_four_strategies_are_discovered():
    assert list(STRATEGIES) == ["adapter", "full", "partial", "prompt"]
    with pytest.raises(FtrayError, match="strategy.kind: 'x' is not one of"):
        get_strategy("x")


def test_full_trains_everything(tiny_bert):
    model, *_ = prepared(tiny_bert, "full")
    assert trainable(model) == {name for name, _ in model.named_parameters()}


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        ({}, lambda n: ".layer.0." in n or ".layer.1." in n or n.startswith("classifier")),
        ({"top_layers": 1}, lambda n: ".layer.1." in n or n.startswith("classifier")),
        ({"bias_only": True}, lambda n: n.endswith("bias") or n.startswith("classifier")),
        ({"head_only": True}, lambda n: n.startswith("classifier")),
        (
            {"patterns": [r"attention\.self\.query"]},
            lambda n: "self.query" in n or n.startswith("classifier"),
        ),
    ],
)
def test_partial_trains_exactly_the_selection_and_the_new_head(tiny_bert, knobs, expected):
    model, *_ = prepared(tiny_bert, "partial", **knobs)
    names = {name for name, _ in model.named_parameters()}
    assert trainable(model) == {n for n in names if expected(n)}
    assert not any("embeddings" in n for n in trainable(model)) or knobs.get("bias_only")


def test_partial_on_a_causal_lm_leaves_the_tied_head_alone(tiny_llama):
    model, *_ = prepared(tiny_llama, "partial", "causal-lm", [], top_layers=1)
    assert trainable(model) and all(n.startswith("model.layers.1.") for n in trainable(model))


def test_partial_rejects_a_pattern_matching_nothing(tiny_bert):
    with pytest.raises(FtrayError, match="strategy.patterns: 'decoder' matches no parameter"):
        prepared(tiny_bert, "partial", patterns=["decoder"])


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_adapter_trains_adapters_and_the_head_only(tiny_bert, method):
    model, *_ = prepared(tiny_bert, "adapter", method=method)
    names = trainable(model)
    marker = "lora_" if method == "lora" else "ia3_"
    assert any(marker in n for n in names)
    assert all(marker in n or "classifier" in n for n in names)
    frozen = {n for n, _ in model.named_parameters()} - names
    assert any("attention.self.query.base_layer.weight" in n or "query.weight" in n for n in frozen)


def test_adapter_reports_unknown_target_modules(tiny_bert):
    with pytest.raises(FtrayError, match="strategy"):
        prepared(tiny_bert, "adapter", target_modules=["no_such_module"])


def test_prompt_tuning_trains_virtual_tokens_and_the_head(tiny_bert):
    model, strategy, config = prepared(tiny_bert, "prompt", num_virtual_tokens=5)
    names = trainable(model)
    assert any("prompt_encoder" in n for n in names)
    assert all("prompt_encoder" in n or "classifier" in n for n in names)
    assert strategy.logit_offset(config, "sequence-classification") == 0


@pytest.mark.parametrize("method", ["prompt_tuning", "p_tuning"])
def test_prompt_methods_work_for_token_classification(tiny_bert, method):
    """PEFT prepends virtual tokens; dropping that many logits re-aligns them with the labels."""
    model, strategy, config = prepared(
        tiny_bert, "prompt", "token-classification", TAGS, method=method, num_virtual_tokens=4
    )
    tokenizer = load_tokenizer(str(tiny_bert))
    batch = tokenizer(["Amara Okafor arrived"], return_tensors="pt")
    labels = torch.tensor([[-100, 1, 2, 0, -100][: batch["input_ids"].shape[1]]])
    offset = strategy.logit_offset(config, "token-classification")
    logits = model(**batch).logits
    assert offset == 4 and logits.shape[1] == batch["input_ids"].shape[1] + 4
    loss, positions = get_task("token-classification").loss(logits[:, offset:], labels)
    loss.backward()
    assert positions == int((labels != -100).sum())
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


def test_prefix_tuning_is_refused_for_classification_and_works_for_decoders(tiny_bert, tiny_llama):
    with pytest.raises(
        FtrayError, match="strategy.method: prefix tuning works for causal-lm decoders only"
    ):
        prepared(tiny_bert, "prompt", method="prefix")
    model, strategy, config = prepared(tiny_llama, "prompt", "causal-lm", [], method="prefix")
    assert strategy.logit_offset(config, "causal-lm") == 0
    ids = torch.tensor([[2, 5, 6, 7]])
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert logits.shape[1] == 4
    logits.sum().backward()  # the prefix really reaches the model: its gradient is not zero
    [prefix] = [p for p in model.parameters() if p.requires_grad]
    assert prefix.grad is not None and prefix.grad.abs().sum() > 0


def test_trainable_counts_order_full_partial_adapter_prompt(tiny_bert):
    counts = [
        len(trainable(prepared(tiny_bert, kind)[0]))
        for kind in ("full", "partial", "adapter", "prompt")
    ]
    sizes = []
    for kind in ("full", "partial", "adapter", "prompt"):
        model = prepared(tiny_bert, kind)[0]
        sizes.append(sum(p.numel() for p in model.parameters() if p.requires_grad))
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4
    assert counts[0] > counts[-1]


@pytest.mark.parametrize(
    ("knobs", "peft_switch"),
    [
        ({"use_dora": True}, ("use_dora", True)),
        ({"use_rslora": True}, ("use_rslora", True)),
        ({"init": "gaussian"}, ("init_lora_weights", "gaussian")),
        ({"init": "pissa"}, ("init_lora_weights", "pissa")),
    ],
)
def test_lora_variants_train_a_step_and_load_back_as_trained(
    tmp_path, tiny_bert, knobs, peft_switch
):
    from ftray.model_files import ModelFiles, strategy_record
    from ftray.optim import param_groups
    from ftray.spec import TrainSpec

    labels = ["negative", "positive"]
    strategy = get_strategy("adapter")
    config = strategy.config_type(**knobs)
    torch.manual_seed(0)
    base = load_task_model(str(tiny_bert), "sequence-classification", labels)
    model = strategy.apply(base, config, "sequence-classification")
    assert getattr(model.peft_config["default"], peft_switch[0]) == peft_switch[1]
    tokenizer = load_tokenizer(str(tiny_bert))
    batch = tokenizer(["a superb kettle", "a dreadful film"], padding=True, return_tensors="pt")
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    optimizer = torch.optim.AdamW(param_groups(model, TrainSpec(), 1e-2))
    model(**batch, labels=torch.tensor([1, 0])).loss.backward()
    optimizer.step()
    changed = [n for n, p in model.named_parameters() if n in lora and not torch.equal(p, lora[n])]
    assert changed, "one step moved no adapter weight"
    model.save_pretrained(tmp_path / "out")
    tokenizer.save_pretrained(tmp_path / "out")
    record = strategy_record(config)["config"]
    files = ModelFiles(
        tmp_path / "out", "adapter", "sequence-classification", labels, tiny_bert, record
    )
    loaded = strategy.load(files)
    with torch.no_grad():
        expected = model.eval()(**batch).logits
        assert torch.allclose(loaded(**batch).logits, expected, atol=1e-5)


def test_lora_plus_gives_the_b_matrices_their_own_learning_rate(tiny_bert):
    from ftray.optim import param_groups
    from ftray.spec import TrainSpec

    strategy = get_strategy("adapter")
    config = strategy.config_type(loraplus_lr_ratio=16)
    model = strategy.apply(
        load_task_model(str(tiny_bert), "sequence-classification", ["a", "b"]),
        config,
        "sequence-classification",
    )
    groups = param_groups(
        model, TrainSpec(), 1e-3, lambda n: strategy.learning_rate_scale(config, n)
    )
    rate = {id(p): group["lr"] for group in groups for p in group["params"]}
    for name, param in model.named_parameters():
        if "lora_B" in name:
            assert rate[id(param)] == pytest.approx(16e-3)
        elif "lora_A" in name:
            assert rate[id(param)] == pytest.approx(1e-3)
