"""Flow-matching VLA policy (pi0 / pi0.5 structure) with Flow-Noise and Flow-SDE likelihoods.

The backbone encodes the prefix once per decision; the action expert (its own, narrower
transformer, as in pi0) predicts the velocity of the H-action chunk at each of the K denoising
steps, cross-attending to the prefix features. (pi0's expert attends to the prefix key/values of
every backbone layer; attending to the final prefix features is the small-model simplification.)

Samplers (model.sampler):
  ode        deterministic Euler steps; no likelihood (eval / SFT only)
  flow_noise every step x_{t-d} ~ N(x_t - d v, sigma_phi^2), sigma_phi from a learned noise head
  flow_sde   every step (sde_mode=all) or one random step per sample (sde_mode=one) follows the
             Flow-SDE transition; the other steps are ODE steps
Log-prob of a chain, per action dimension [N, H, A]: log N(x_1; 0, I) + the SUM (not the mean)
over stochastic steps of the Gaussian step log-densities. The sum is the exact log-density of the
sampled chain, so exp(new - old) is the true likelihood ratio. The prior term does not depend on
the parameters; it cancels in ratios and is kept so the value is a real log-density. (In
sde_mode=one the ODE steps are deterministic given x_1 and contribute no density term.)
Entropy estimate [N, H, A]: entropy of the prior plus the sum of the Gaussian entropies of the
stochastic steps, evaluated along the stored chain.
"""

from __future__ import annotations

import torch
from torch import nn

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.backbone import BackboneOutput
from rl_post.models.base_policy import VLAPolicyBase, check_act_mode, masked_mean
from rl_post.models.config import ModelConfig
from rl_post.models.flow_math import (
    bounded_sigma,
    chain_log_likelihood,
    chain_step_gaussians,
    chain_steps,
    sample_chain,
    stochastic_step_mask,
    transition_mean_std,
)
from rl_post.models.policy import ActMode, ActOutput, EvalOutput
from rl_post.models.transformer import MLP, Block, sinusoidal_embedding


class ActionExpert(nn.Module):
    """v_theta(x_t, t, context) for a chunk of H actions; also returns its last hidden states."""

    def __init__(self, cfg: ModelConfig, action_dim: int) -> None:
        super().__init__()
        width = cfg.expert_d_model
        self.width = width
        self.context_proj = nn.Linear(cfg.d_model, width)
        self.action_in = nn.Linear(action_dim, width)
        # pi0: action and time embeddings are concatenated and mixed by an MLP
        self.action_time_mlp = MLP(2 * width, width, width)
        self.position = nn.Parameter(torch.randn(cfg.action_horizon, width) * 0.02)
        self.blocks = nn.ModuleList(
            Block(width, cfg.num_heads, cfg.mlp_ratio, cross=True) for _ in range(cfg.expert_layers)
        )
        self.norm = nn.LayerNorm(width)
        self.velocity_out = nn.Linear(width, action_dim)

    def context(self, out: BackboneOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix features projected to the expert width [N, L, w] and their mask [N, 1, 1, L]."""
        return self.context_proj(out.prefix), out.prefix_valid[:, None, None, :]

    def context_kv(self, context: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each block's cross-attention keys/values of the prefix: computed once per decision and
        reused by all K denoising steps (pi0's prefix KV cache)."""
        return [block.cross_attn.project_kv(context) for block in self.blocks]

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor | None,
        context_mask: torch.Tensor,
        context_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t [B, H, A], t [B] -> velocity [B, H, A], hidden [B, H, w]. With `context_kv` of
        N <= B rows (and context_mask [N, ...]), each N-th block of B/N consecutive rows shares
        one prefix."""
        time = sinusoidal_embedding(t, self.width)[:, None, :].expand(-1, x_t.shape[1], -1)
        h = self.action_time_mlp(torch.cat([self.action_in(x_t), time], dim=-1)) + self.position
        for i, block in enumerate(self.blocks):
            kv = None if context_kv is None else context_kv[i]
            h = block(h, None, context, context_mask, kv)
        h = self.norm(h)
        return self.velocity_out(h), h


class NoiseHead(nn.Module):
    """sigma_phi(x_t, t, context) in [sigma_min, sigma_max], read from the expert's hidden states."""

    def __init__(self, width: int, hidden: int, action_dim: int, lo: float, hi: float) -> None:
        super().__init__()
        self.lo, self.hi = lo, hi
        self.mlp = MLP(width, hidden, action_dim)
        # Start every sigma at the middle of its range.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return bounded_sigma(self.mlp(hidden), self.lo, self.hi)


class FlowMatchingPolicy(VLAPolicyBase):
    kind = "flow"
    has_step_gaussians = True

    def __init__(self, cfg: ModelConfig, spec: ObsSpec) -> None:
        super().__init__(cfg, spec)
        self.num_steps = cfg.num_denoise_steps
        self.dt = 1.0 / cfg.num_denoise_steps
        # Flow-SDE sigma_t blows up at t=1; by default the denominator uses the next grid time.
        self.sde_t_max = cfg.sde_t_max if cfg.sde_t_max is not None else 1.0 - self.dt
        self.expert = ActionExpert(cfg, spec.action_dim)
        self.noise_head = NoiseHead(
            cfg.expert_d_model, cfg.noise_head_hidden, spec.action_dim, cfg.sigma_min, cfg.sigma_max
        )

    # ----- transitions -------------------------------------------------------------------------

    def _transition(
        self, x_t: torch.Tensor, velocity: torch.Tensor, hidden: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std [B, H, A] of the stochastic step from x_t (t [B])."""
        flow_noise = self.config.sampler == "flow_noise"
        return transition_mean_std(
            self.config.sampler,
            x_t,
            velocity,
            t,
            self.dt,
            noise_std=self.noise_head(hidden) if flow_noise else None,
            noise_level=self.config.noise_level,
            sde_t_max=self.sde_t_max,
        )

    def _require_likelihood(self) -> None:
        if self.config.sampler == "ode":
            raise ConfigError(
                "model.sampler=ode is deterministic and has no log-likelihood; use "
                "model.sampler=flow_noise or flow_sde for RL, or act(obs, mode='deterministic')"
            )

    def _one_step(self) -> bool:
        return self.config.sampler == "flow_sde" and self.config.sde_mode == "one"

    # ----- Policy protocol ---------------------------------------------------------------------

    @torch.no_grad()
    def act(
        self,
        obs: dict[str, object],
        mode: ActMode = "stochastic",
        generator: torch.Generator | None = None,
    ) -> ActOutput:
        check_act_mode(mode)
        stochastic = mode == "stochastic"
        if stochastic:
            self._require_likelihood()
        out = self.encode(obs)
        context, context_mask = self.expert.context(out)
        n = context.shape[0]
        x, chain, logprob, stored = self._sample(
            context, context_mask, self._initial_noise(n, generator), stochastic, generator
        )
        stored["chain"] = chain
        return ActOutput(
            actions=self._to_env_units(x),
            logprob=self._likelihood_slice(logprob if stochastic else torch.zeros_like(x)),
            value=self._value_from(out),
            stored=stored,
        )

    def _initial_noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """x_1 [n, H, A]: N(0, I) (pi0), or zeros with model.initial_noise=zero, where the chain
        starts from a fixed point and every bit of action noise is a likelihood-visible step."""
        shape = (n, self.action_horizon, self.action_dim)
        if self.config.initial_noise == "zero":
            return torch.zeros(shape, device=self.device)
        return torch.randn(shape, generator=generator, device=self.device)

    def _sample(
        self,
        context: torch.Tensor,
        context_mask: torch.Tensor,
        x: torch.Tensor,
        stochastic: bool,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Run the K denoising steps from x_1 = x (flow_math.sample_chain): (x_0 [N, H, A], chain
        [N, K+1, H, A], chain log-prob [N, H, A], stored extras such as the one-step SDE's step).
        The prefix keys/values are computed once and shared by all K steps."""
        context_kv = self.expert.context_kv(context)

        def step(x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
            velocity, hidden = self.expert(x_t, t, None, context_mask, context_kv)
            if not stochastic:
                return velocity, velocity, velocity  # mean/std unused on the ODE path
            return (velocity, *self._transition(x_t, velocity, hidden, t))

        result = sample_chain(
            x,
            self.num_steps,
            step,
            stochastic=stochastic,
            one_step=self._one_step(),
            sampled_dims=self.action_dim,
            generator=generator,
            prior=self.config.initial_noise != "zero",
        )
        stored = {} if result.sde_step is None else {"sde_step": result.sde_step}
        return result.chain[:, -1], result.chain, result.logprob, stored

    @torch.no_grad()
    def noise_share(
        self,
        obs: dict[str, object],
        num_initial: int,
        num_draws: int,
        generator: torch.Generator | None = None,
    ) -> float:
        """Share of the sampled action's variance that the chain likelihood sees.

        By the law of total variance Var(a) = E[Var(a | x_1)] + Var(E[a | x_1]); only the first
        part comes from the Gaussian steps whose densities enter log p(chain) with parameters in
        them, the second from x_1, which the likelihood scores with a parameter-free prior. The
        estimate samples `num_initial` x_1 per observation and `num_draws` step-noise chains per
        x_1, and returns sum_obs E[Var(a | x_1)] / sum_obs Var(a) over the likelihood's actions
        (normalized units, summed over dimensions). 1.0 with model.initial_noise=zero.
        """
        self._require_likelihood()
        if num_initial < 1 or num_draws < 2:
            raise ValueError("noise_share needs num_initial >= 1 and num_draws >= 2")
        if self.config.initial_noise == "zero":  # one fixed x_1: every draw shares it
            num_initial, num_draws = 1, num_initial * num_draws
        out = self.encode(obs)
        context, context_mask = self.expert.context(out)
        n, reps = context.shape[0], num_initial * num_draws
        x_1 = self._initial_noise(n * num_initial, generator)
        x_1 = x_1.repeat_interleave(num_draws, dim=0)
        x, _, _, _ = self._sample(context, context_mask, x_1, True, generator)
        actions = self._likelihood_slice(x).reshape(n, num_initial, num_draws, -1).double()
        within = actions.var(dim=2).mean(dim=1).sum(dim=-1)
        total = actions.reshape(n, reps, -1).var(dim=1).sum(dim=-1)
        return float(within.sum() / total.sum()) if float(total.sum()) > 0 else float("nan")

    def evaluate(self, obs: dict[str, object], stored: dict[str, torch.Tensor]) -> EvalOutput:
        """Recompute the chain log-prob with current parameters: all K steps in one batched pass."""
        self._require_likelihood()
        chain = self._check_chain(stored)
        n = chain.shape[0]
        out = self.encode(obs)
        context, context_mask = self.expert.context(out)
        x_t, _, t = chain_steps(chain)  # [N*K, H, A], sample-major
        # x_t is sample-major, so the K steps of one sample share its prefix keys/values
        velocity, hidden = self.expert(x_t, t, None, context_mask, self.expert.context_kv(context))
        mean, std = self._transition(x_t, velocity, hidden, t)
        stochastic = self._stochastic_steps(stored, n, chain.device)
        logprob, entropy = chain_log_likelihood(
            chain,
            mean,
            std,
            stochastic,
            self.action_dim,
            prior=self.config.initial_noise != "zero",
        )
        gaussians = chain_step_gaussians(mean, std, stochastic, self._likelihood_slice)
        return EvalOutput(
            logprob=self._likelihood_slice(logprob),
            entropy=self._likelihood_slice(entropy),
            value=self._value_from(out),
            gaussians=gaussians,
        )

    def _check_chain(self, stored: dict[str, torch.Tensor]) -> torch.Tensor:
        if "chain" not in stored:
            raise ConfigError(
                "stored data has no 'chain'; pass the `stored` dict that act() returned "
                f"(keys present: {sorted(stored)})"
            )
        chain = stored["chain"].to(self.device).float()
        expected = (self.num_steps + 1, self.action_horizon, self.action_dim)
        if chain.dim() != 4 or tuple(chain.shape[1:]) != expected:
            raise ConfigError(
                f"stored chain has shape {tuple(chain.shape)}, expected [N, {expected[0]}, "
                f"{expected[1]}, {expected[2]}]; the rollout used a different "
                "model.num_denoise_steps / action_horizon than the learner"
            )
        return chain

    def _stochastic_steps(
        self, stored: dict[str, torch.Tensor], n: int, device: torch.device
    ) -> torch.Tensor:
        """[N, K] bool: which denoising steps were sampled (the rest were ODE steps)."""
        if self._one_step() and "sde_step" not in stored:
            raise ConfigError(
                "model.sde_mode=one needs stored['sde_step'] from act(); the rollout was made "
                "with a different sampler setting than the learner"
            )
        sde_step = stored["sde_step"] if self._one_step() else None
        return stochastic_step_mask(n, self.num_steps, sde_step, device)

    # ----- supervised training -----------------------------------------------------------------

    def bc_loss(
        self,
        obs: dict[str, object],
        action_chunk: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Flow-matching loss: regress v_theta(x_t, t) onto noise - action at a random t."""
        action = self.normalizer.normalize_action(self._check_action_chunk(action_chunk))
        n = action.shape[0]
        out = self.encode(obs)
        context, context_mask = self.expert.context(out)
        alpha, beta = self.config.bc_time_beta
        draw = torch.distributions.Beta(alpha, beta).sample((n,)).to(action.device)
        t = self.config.bc_time_min + (1.0 - self.config.bc_time_min) * draw
        noise = torch.randn_like(action)
        t3 = t[:, None, None]
        x_t = t3 * noise + (1.0 - t3) * action
        velocity, _ = self.expert(x_t, t, context, context_mask)
        loss = masked_mean((velocity - (noise - action)) ** 2, mask)
        return loss, {"bc_loss": float(loss.detach())}
