"""Discrete-token VLA policy (OpenVLA-OFT structure): parallel decoding of binned actions.

Each action dimension of each chunk action is one token over `num_bins` uniform bins on the
normalized range [-1, 1] (the normalization bounds: env bounds or dataset quantiles). H*A learned
action-query tokens join the backbone sequence and all chunk tokens are decoded in ONE forward
pass (OFT's parallel decoding; queries attend to the prefix and to each other, the prefix never
attends to the queries). Log-prob and entropy are exact per token, [N, H, A], at the configured
sampling temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.base_policy import VLAPolicyBase, check_act_mode, masked_mean
from rl_post.models.config import ModelConfig
from rl_post.models.policy import ActMode, ActOutput, EvalOutput


def bin_centers(num_bins: int, device: torch.device | None = None) -> torch.Tensor:
    """[num_bins] centers of uniform bins on [-1, 1]."""
    edges = torch.linspace(-1.0, 1.0, num_bins + 1, device=device)
    return 0.5 * (edges[:-1] + edges[1:])


def discretize(normalized: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Bin index (int64) of normalized actions; values outside [-1, 1] saturate at the end bins."""
    index = torch.floor((normalized + 1.0) * 0.5 * num_bins).long()
    return index.clamp(0, num_bins - 1)


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of probs [..., bins] by inverse CDF (much faster than multinomial on CPU).

    side="right" never selects a zero-probability bin; the clamp covers u beyond a cumulative sum
    that rounds below 1.
    """
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(*probs.shape[:-1], 1, generator=generator, device=probs.device)
    index = torch.searchsorted(cdf, u * cdf[..., -1:], right=True)
    return index.clamp_max(probs.shape[-1] - 1).squeeze(-1)


class TokenPolicy(VLAPolicyBase):
    kind = "token"

    def __init__(self, cfg: ModelConfig, spec: ObsSpec) -> None:
        super().__init__(cfg, spec)
        self.num_bins = cfg.num_bins
        self.temperature = cfg.temperature
        num_queries = cfg.action_horizon * spec.action_dim
        self.action_queries = nn.Parameter(torch.randn(1, num_queries, cfg.d_model) * 0.02)
        self.token_head = nn.Linear(cfg.d_model, cfg.num_bins)
        self.register_buffer("centers", bin_centers(cfg.num_bins), persistent=False)

    def _logits(self, obs: dict[str, object]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw logits [N, H, A, bins] (temperature 1) and the value [N] (or None)."""
        out = self.encode(obs, suffix=self.action_queries)
        assert out.suffix is not None
        logits = self.token_head(out.suffix)
        return logits.unflatten(1, (self.action_horizon, self.action_dim)), self._value_from(out)

    @torch.no_grad()
    def act(
        self,
        obs: dict[str, object],
        mode: ActMode = "stochastic",
        generator: torch.Generator | None = None,
    ) -> ActOutput:
        check_act_mode(mode)
        logits, value = self._logits(obs)
        if mode == "deterministic":
            tokens = logits.argmax(dim=-1)
            logprob = torch.zeros(tokens.shape, device=logits.device)
        else:
            log_probs = F.log_softmax(logits / self.temperature, dim=-1)
            tokens = sample_categorical(log_probs.exp(), generator)
            logprob = log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        actions = self._to_env_units(self.centers[tokens])
        return ActOutput(
            actions=actions,
            logprob=self._likelihood_slice(logprob),
            value=value,
            stored={"tokens": tokens},
        )

    def noise_share(
        self,
        obs: dict[str, object],
        num_initial: int,
        num_draws: int,
        generator: torch.Generator | None = None,
    ) -> float:
        """1.0: every sampled token is scored by the likelihood, so all of the action noise is
        likelihood-visible (contrast the flow policy, whose x_1 is not)."""
        return 1.0

    def evaluate(self, obs: dict[str, object], stored: dict[str, torch.Tensor]) -> EvalOutput:
        if "tokens" not in stored:
            raise ConfigError(
                "stored data has no 'tokens'; pass the `stored` dict that act() returned "
                f"(keys present: {sorted(stored)})"
            )
        tokens = stored["tokens"].to(self.device).long()
        expected = (self.action_horizon, self.action_dim)
        if tokens.dim() != 3 or tuple(tokens.shape[1:]) != expected:
            raise ConfigError(
                f"stored tokens have shape {tuple(tokens.shape)}, expected [N, {expected[0]}, "
                f"{expected[1]}]; the rollout used a different action_horizon than the learner"
            )
        logits, value = self._logits(obs)
        log_probs = F.log_softmax(logits / self.temperature, dim=-1)
        logprob = log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
        return EvalOutput(
            logprob=self._likelihood_slice(logprob),
            entropy=self._likelihood_slice(entropy),
            value=value,
        )

    def bc_loss(
        self,
        obs: dict[str, object],
        action_chunk: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy of the demo action bins (temperature 1: the model's own distribution)."""
        action = self.normalizer.normalize_action(self._check_action_chunk(action_chunk))
        targets = discretize(action, self.num_bins)
        logits, _ = self._logits(obs)
        nll = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), reduction="none")
        loss = masked_mean(nll.view(targets.shape), mask)
        accuracy = (logits.argmax(-1) == targets).float().mean()
        return loss, {"bc_loss": float(loss.detach()), "bin_accuracy": float(accuracy)}
