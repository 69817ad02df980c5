import pytest
import torch
import torch.nn.functional as F

from rl_post.config import ConfigError
from rl_post.models.token_policy import bin_centers, discretize

from .helpers import RGB_SPEC, STATE_SPEC, make_obs, make_policy


def test_bin_centers_and_discretize_hand_values():
    assert bin_centers(4).tolist() == pytest.approx([-0.75, -0.25, 0.25, 0.75])
    values = torch.tensor([-2.0, -1.0, -0.6, -0.4, 0.0, 0.49, 0.51, 1.0, 3.0])
    assert discretize(values, 4).tolist() == [0, 0, 0, 1, 2, 2, 3, 3, 3]
    centers = bin_centers(256)
    assert torch.equal(discretize(centers, 256), torch.arange(256))


def test_logprob_and_entropy_match_direct_log_softmax():
    policy = make_policy("token_tiny", temperature=0.7)
    obs = make_obs(6)
    out = policy.act(obs, generator=torch.Generator().manual_seed(0))
    tokens = out.stored["tokens"]
    assert tokens.shape == (6, policy.action_horizon, policy.action_dim)
    assert tokens.dtype == torch.int64
    with torch.no_grad():
        backbone = policy.encode(obs, suffix=policy.action_queries)
        logits = policy.token_head(backbone.suffix).view(
            6, policy.action_horizon, policy.action_dim, -1
        )
    log_probs = F.log_softmax(logits / 0.7, dim=-1)
    expected = log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(out.logprob, expected, atol=1e-6)
    evaluated = policy.evaluate(obs, out.stored)
    assert torch.allclose(evaluated.logprob, expected, atol=1e-6)
    categorical = torch.distributions.Categorical(logits=logits / 0.7)
    assert torch.allclose(evaluated.entropy, categorical.entropy(), atol=1e-5)
    centers = policy.normalizer.unnormalize_action(bin_centers(256)[tokens])
    assert torch.allclose(out.actions, centers, atol=1e-6)


def test_deterministic_mode_returns_argmax_bin_centers():
    policy = make_policy("token_tiny")
    obs = make_obs(5)
    out = policy.act(obs, "deterministic")
    with torch.no_grad():
        backbone = policy.encode(obs, suffix=policy.action_queries)
        best = policy.token_head(backbone.suffix).argmax(-1).view(5, policy.action_horizon, -1)
    assert torch.equal(out.stored["tokens"], best)
    expected = policy.normalizer.unnormalize_action(bin_centers(256)[best])
    assert torch.allclose(out.actions, expected, atol=1e-6)
    assert torch.all(out.logprob == 0)


def test_gradients_flow_to_head_and_backbone():
    policy = make_policy("token_tiny")
    obs = make_obs(4)
    out = policy.act(obs)
    result = policy.evaluate(obs, out.stored)
    (result.logprob.sum() + result.entropy.sum()).backward()
    assert policy.token_head.weight.grad.abs().sum() > 0
    assert policy.action_queries.grad.abs().sum() > 0
    assert policy.backbone.blocks[0].mlp[0].weight.grad.abs().sum() > 0


def test_prefix_features_do_not_depend_on_action_queries():
    policy = make_policy("token_tiny")
    obs = make_obs(3)
    with torch.no_grad():
        with_queries = policy.encode(obs, suffix=policy.action_queries)
        alone = policy.encode(obs)
    assert torch.allclose(with_queries.prefix, alone.prefix, atol=1e-6)


def test_same_seed_same_tokens():
    policy = make_policy("token_tiny")
    obs = make_obs(8)
    a = policy.act(obs, generator=torch.Generator().manual_seed(4))
    b = policy.act(obs, generator=torch.Generator().manual_seed(4))
    c = policy.act(obs, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.stored["tokens"], b.stored["tokens"])
    assert not torch.equal(a.stored["tokens"], c.stored["tokens"])


def test_rgb_and_state_only_obs():
    policy = make_policy("token_tiny", spec=RGB_SPEC)
    obs = make_obs(4, rgb=True)
    out = policy.act(obs)
    assert torch.allclose(policy.evaluate(obs, out.stored).logprob, out.logprob, atol=1e-6)
    state_only = {k: v for k, v in obs.items() if k != "rgb"}
    assert policy.act(state_only).actions.shape == (4, policy.action_horizon, policy.action_dim)


def test_bc_loss_decreases_and_learns_the_bins():
    policy = make_policy("token_tiny", spec=STATE_SPEC)
    obs = make_obs(16)
    chunk = policy.normalizer.unnormalize_action(
        torch.rand(16, policy.action_horizon, policy.action_dim) * 1.6 - 0.8
    )
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss, stats = policy.bc_loss(obs, chunk)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = stats["bc_loss"] if first is None else first
    assert stats["bc_loss"] < 0.7 * first
    with pytest.raises(ConfigError, match="tokens"):
        policy.evaluate(obs, {"chain": torch.zeros(1)})


def test_sample_categorical_follows_the_probabilities():
    from rl_post.models.token_policy import sample_categorical

    probs = torch.tensor([[0.0, 0.2, 0.0, 0.8]]).expand(20000, 4)
    draws = sample_categorical(probs, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=4).float() / 20000
    assert counts[0] == 0 and counts[2] == 0  # zero-probability bins are never drawn
    assert counts[1].item() == pytest.approx(0.2, abs=0.015)
