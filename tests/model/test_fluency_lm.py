"""The causal-LM fluency plug: a tiny GPT-2 trained here, saved to a folder, loaded offline."""

import random

import pytest
import tokenizers
import torch
import transformers

from components.data.ingest.fluency import CausalLmScorer, FluencyFilter, calibrate, scrambled
from components.errors import ConfigError

PHRASES = ["深层补水", "持久保湿", "清爽不油腻", "敏感肌可用", "温和不刺激", "补水保湿"]


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    """A character GPT-2 fitted to the phrases, saved in Hugging Face's format."""
    chars = sorted(set("".join(PHRASES)))
    vocab = {"<unk>": 0, "<s>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Split("", behavior="isolated")
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="<s>"
    )
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(vocab), n_positions=16, n_embd=32, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    batch = [torch.tensor([[1, *tokenizer(p)["input_ids"], 1]]) for p in PHRASES]
    for _ in range(60):
        for ids in batch:
            optimizer.zero_grad()
            model(ids, labels=ids).loss.backward()
            optimizer.step()
    folder = tmp_path_factory.mktemp("lm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_local_causal_lm_scores_real_phrasing_above_scrambled(language_model):
    scorer = CausalLmScorer(str(language_model))
    rng = random.Random(0)
    for phrase in PHRASES:
        assert scorer.score(phrase) > scorer.score(scrambled(phrase, rng))
    check = FluencyFilter(scorer, calibrate(scorer, PHRASES, target=1.0))
    assert all(check(p) for p in PHRASES)


def test_a_missing_model_folder_is_refused_without_a_download(tmp_path):
    with pytest.raises(ConfigError, match="'ingest.fluency': .*absent is not a causal LM folder"):
        CausalLmScorer(str(tmp_path / "absent"))
