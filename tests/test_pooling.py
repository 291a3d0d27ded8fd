"""Sentence-transformers checkpoints classify through the mean of their token states, in training,
after saving, and under a PEFT adapter; other checkpoints keep transformers' [CLS] pooler."""

import json
import shutil

import torch
from peft import PeftModel

from ftray.models import load_task_model, load_tokenizer
from ftray.pooling import MeanPooler
from ftray.strategies import get_strategy

LABELS = ["negative", "positive"]
TEXTS = ["a short one", "a much longer sentence that needs padding in the batch"]


def sentence_transformers_copy(tiny_bert, tmp_path):
    """The tiny BERT with a sentence-transformers pooling config beside it, as MiniLM ships."""
    path = tmp_path / "st-bert"
    shutil.copytree(tiny_bert, path)
    (path / "1_Pooling").mkdir()
    config = {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}
    (path / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return path


def logits(model, tokenizer, texts):
    with torch.no_grad():
        return model.eval()(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def test_a_mean_pooled_checkpoint_pools_the_mean_of_unpadded_tokens(tiny_bert, tmp_path):
    path = sentence_transformers_copy(tiny_bert, tmp_path)
    model = load_task_model(str(path), "sequence-classification", LABELS)
    tokenizer = load_tokenizer(str(path))
    assert isinstance(model.base_model.pooler, MeanPooler)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model.base_model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = model.classifier((states * mask).sum(1) / mask.sum(1))
        assert torch.allclose(model.eval()(**batch).logits, expected, atol=1e-6)
    # Padding changes nothing: each text alone scores as it does in the padded batch.
    alone = torch.cat([logits(model, tokenizer, [t]) for t in TEXTS])
    assert torch.allclose(alone, logits(model, tokenizer, TEXTS), atol=1e-5)


def test_the_pooling_survives_saving_and_adapters(tiny_bert, tmp_path):
    path = sentence_transformers_copy(tiny_bert, tmp_path)
    tokenizer = load_tokenizer(str(path))
    model = load_task_model(str(path), "sequence-classification", LABELS)
    model.save_pretrained(tmp_path / "full")
    tokenizer.save_pretrained(tmp_path / "full")
    reloaded = load_task_model(str(tmp_path / "full"), "sequence-classification", LABELS)
    assert isinstance(reloaded.base_model.pooler, MeanPooler)
    assert torch.allclose(logits(model, tokenizer, TEXTS), logits(reloaded, tokenizer, TEXTS))

    strategy = get_strategy("adapter")
    adapted = strategy.apply(
        load_task_model(str(path), "sequence-classification", LABELS),
        strategy.config_type(),
        "sequence-classification",
    )
    adapted.save_pretrained(tmp_path / "adapter")
    base = load_task_model(str(path), "sequence-classification", LABELS)
    loaded = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    assert isinstance(loaded.base_model.model.base_model.pooler, MeanPooler)
    assert torch.allclose(logits(adapted, tokenizer, TEXTS), logits(loaded, tokenizer, TEXTS))


def test_other_checkpoints_keep_the_cls_pooler(tiny_bert):
    model = load_task_model(str(tiny_bert), "sequence-classification", LABELS)
    assert type(model.base_model.pooler).__name__ == "BertPooler"
    assert not hasattr(model.config, "ftray_pooling")
