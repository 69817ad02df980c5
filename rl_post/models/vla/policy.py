"""RL policies over the real VLA networks: Flow-Noise / Flow-SDE sampling with exact chain
log-likelihoods (rl_post.models.flow_math, shared with the tiny flow policy), value head, SFT loss.

The flow runs in the network's padded action space (max_action_dim = 32 for LeRobot's SmolVLA and
pi0). Only the env's A action dims are stochastic: the padding dims always take the ODE step, so
they are deterministic given x_1 and the sampled dims, and the chain log-density over the sampled
dims is exact. Log-probs are [N, H, A] like every rl_post policy: log N(x_1[:A]; 0, I) plus the
SUM of the stochastic steps' Gaussian log-densities (the prior of the padding dims is a
parameter-free constant and left out).

Flow-Noise: sigma in [sigma_min, sigma_max] from a noise head on the expert's hidden states of
the action tokens. Flow-SDE: sigma_t = noise_level * sqrt(t / (1 - t)), all steps or one random
step. Value head: on the mean of the VLM's prefix outputs (value_source=prefix) or on the expert's
output for x = 0 at t = 1 (value_source=expert); both are functions of the observation only.

One VLM pass per observation: act() caches the prefix keys/values and runs the K denoising steps
on the expert; evaluate() recomputes all K steps of the stored chains in one batched expert pass.
"""

from __future__ import annotations

import abc

import torch
from torch import nn

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.backbone import ValueHead
from rl_post.models.base_policy import check_act_mode, masked_mean
from rl_post.models.flow_math import (
    chain_log_likelihood,
    chain_step_gaussians,
    chain_steps,
    sample_chain,
    stochastic_step_mask,
    transition_mean_std,
)
from rl_post.models.flow_policy import NoiseHead
from rl_post.models.policy import ActMode, ActOutput, EvalOutput
from rl_post.models.vla.config import VLAModelConfig
from rl_post.models.vla.inputs import (
    InputLayout,
    images_uint8,
    input_layout,
    instructions,
    select_state,
)
from rl_post.models.vla.normalization import LeRobotNormalizer, env_bounds
from rl_post.models.vla.ops import pad_last_dim
from rl_post.models.vla.prefix import PrefixCache
from rl_post.models.vla.tokenizer import InstructionEncoder, load_tokenizer

VALUE_HEAD_PREFIX = "value_head."


def _fp32(device: torch.device) -> torch.autocast:
    """Flow math in float32 even inside the learner's bf16 autocast (exact PPO ratios)."""
    return torch.autocast(device_type=device.type, enabled=False)


class VLAFlowPolicy(nn.Module, abc.ABC):
    kind: str
    has_step_gaussians = True
    padding: str  # how instructions are padded ("longest" | "max_length")

    def __init__(self, cfg: VLAModelConfig, spec: ObsSpec) -> None:
        super().__init__()
        self.config = cfg
        self.spec = spec
        self.layout: InputLayout = input_layout(cfg, spec)
        self.action_horizon = cfg.action_horizon
        self.execute_steps = cfg.execute_steps
        self.action_dim = spec.action_dim
        self.num_steps = cfg.num_denoise_steps
        self.dt = 1.0 / cfg.num_denoise_steps
        self.sde_t_max = cfg.sde_t_max if cfg.sde_t_max is not None else 1.0 - self.dt
        self.model = self.build_network(cfg)
        low, high = env_bounds(spec.action_low, spec.action_high, spec.action_dim)
        mapping = cfg.normalization_mapping
        self.normalizer = LeRobotNormalizer(
            self.layout.state_dim, spec.action_dim, mapping["STATE"], mapping["ACTION"], low, high
        )
        self.noise_head = NoiseHead(
            self.model.expert_width,
            cfg.noise_head_hidden,
            spec.action_dim,
            cfg.sigma_min,
            cfg.sigma_max,
        )
        value_width = (
            self.model.prefix_width if cfg.value_source == "prefix" else self.model.expert_width
        )
        self.value_head = (
            ValueHead(value_width, cfg.value_hidden, cfg.detach_value_head)
            if cfg.value_head
            else None
        )
        self.instruction_encoder = InstructionEncoder(
            load_tokenizer(cfg.tokenizer_path), cfg.tokenizer_max_length, self.padding
        )
        if self.instruction_encoder.vocab_size > self.vocab_size:
            raise ConfigError(
                f"the tokenizer has {self.instruction_encoder.vocab_size} tokens but the VLM's "
                f"embedding only {self.vocab_size}; use the checkpoint's own tokenizer "
                "(model.tokenizer_path)"
            )

    # ----- what each family provides ------------------------------------------------------------

    @abc.abstractmethod
    def build_network(self, cfg: VLAModelConfig) -> nn.Module: ...

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int: ...

    @abc.abstractmethod
    def prepare_images(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """[N, H, W, 3] in [0, 1] per image key -> the VLM's pixel values [N, 3, h, w]."""
        ...

    @abc.abstractmethod
    def vlm_module(self) -> nn.Module:
        """The pretrained VLM (frozen by train=expert, LoRA-adapted by train=lora)."""
        ...

    @abc.abstractmethod
    def vision_module(self) -> nn.Module: ...

    @abc.abstractmethod
    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters no action, value or noise output depends on (lm heads): never trained."""
        ...

    # ----- shared machinery ---------------------------------------------------------------------

    @property
    def has_value_head(self) -> bool:
        return self.value_head is not None

    @property
    def device(self) -> torch.device:
        return self.normalizer.env_low.device

    def encode(self, obs: dict[str, object]) -> PrefixCache:
        """One VLM pass over the observation's prefix (images, instruction, and for SmolVLA the
        state token)."""
        device = self.device
        state = select_state(obs, self.layout, device)
        n = state.shape[0]
        state = pad_last_dim(self.normalizer.normalize_state(state), self.config.max_state_dim)
        pixels = self.prepare_images(images_uint8(obs, self.layout, device))
        masks = [torch.ones(n, dtype=torch.bool, device=device) for _ in pixels]
        for _ in range(self.config.empty_cameras):  # LeRobot's empty cameras: -1 images, masked
            pixels.append(torch.full_like(pixels[0], -1.0))
            masks.append(torch.zeros(n, dtype=torch.bool, device=device))
        tokens, token_mask = self.instruction_encoder(instructions(obs, self.layout, n), device)
        return self.model.encode_prefix(pixels, masks, tokens, token_mask, state)

    def _velocity(
        self, x: torch.Tensor, t: torch.Tensor, cache: PrefixCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.model.expert_hidden(x, t, cache)
        with _fp32(x.device):
            hidden = hidden.float()
            return self.model.action_out_proj(hidden), hidden

    def _transition(
        self, x: torch.Tensor, velocity: torch.Tensor, hidden: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.action_dim
        flow_noise = self.config.sampler == "flow_noise"
        with _fp32(x.device):
            return transition_mean_std(
                self.config.sampler,
                x[..., :a].float(),
                velocity[..., :a],
                t,
                self.dt,
                noise_std=self.noise_head(hidden) if flow_noise else None,
                noise_level=self.config.noise_level,
                sde_t_max=self.sde_t_max,
            )

    def _value(self, cache: PrefixCache) -> torch.Tensor | None:
        if self.value_head is None:
            return None
        if self.config.value_source == "prefix":
            feature = cache.pooled()
        else:
            n = cache.pad.shape[0]
            zeros = torch.zeros(
                n, self.action_horizon, self.config.max_action_dim, device=cache.pad.device
            )
            feature = self._velocity(zeros, torch.ones(n, device=zeros.device), cache)[1].mean(1)
        with _fp32(feature.device):
            return self.value_head(feature.float())

    def value(self, obs: dict[str, object]) -> torch.Tensor:
        if self.value_head is None:
            raise ConfigError(
                f"model '{self.config.name}' has no value head; set model.value_head=true for "
                "PPO (GRPO/RLOO need no critic)"
            )
        value = self._value(self.encode(obs))
        assert value is not None
        return value

    def _require_likelihood(self) -> None:
        if self.config.sampler == "ode":
            raise ConfigError(
                "model.sampler=ode is deterministic and has no log-likelihood; use "
                "model.sampler=flow_noise or flow_sde for RL, or act(obs, mode='deterministic')"
            )

    def _one_step(self) -> bool:
        return self.config.sampler == "flow_sde" and self.config.sde_mode == "one"

    def _likelihood_slice(self, per_action: torch.Tensor) -> torch.Tensor:
        if self.config.likelihood_actions == "executed":
            return per_action[:, : self.execute_steps]
        return per_action

    def _to_env_units(self, x: torch.Tensor) -> torch.Tensor:
        actions = self.normalizer.unnormalize_action(x[..., : self.action_dim].float())
        return self.normalizer.clip_to_env(actions)

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
        cache = self.encode(obs)
        n = cache.pad.shape[0]

        def step(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
            velocity, hidden = self._velocity(x, t, cache)
            if not stochastic:
                return velocity, x, x  # mean/std unused by ODE steps
            return velocity, *self._transition(x, velocity, hidden, t)

        sampled = sample_chain(
            self._initial_noise(n, generator),
            self.num_steps,
            step,
            stochastic=stochastic,
            one_step=self._one_step(),
            sampled_dims=self.action_dim,
            generator=generator,
            prior=self.config.initial_noise == "random",
        )
        stored = {"chain": sampled.chain}
        if sampled.sde_step is not None:
            stored["sde_step"] = sampled.sde_step
        return ActOutput(
            actions=self._to_env_units(sampled.chain[:, -1]),
            logprob=self._likelihood_slice(sampled.logprob),
            value=self._value(cache),
            stored=stored,
        )

    def _initial_noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """x_1 [n, H, 32]: N(0, I) as in LeRobot, or zeros (model.initial_noise=zero)."""
        shape = (n, self.action_horizon, self.config.max_action_dim)
        if self.config.initial_noise == "zero":
            return torch.zeros(shape, device=self.device)
        return torch.randn(shape, generator=generator, device=self.device)

    @torch.no_grad()
    def noise_share(
        self,
        obs: dict[str, object],
        num_initial: int,
        num_draws: int,
        generator: torch.Generator | None = None,
    ) -> float:
        """Share of the sampled actions' variance that the chain likelihood sees (the learner's
        noise-share diagnostic, as FlowMatchingPolicy.noise_share defines it): E[Var(a | x_1)] /
        Var(a) over the likelihood's actions, from `num_initial` x_1 x `num_draws` chains."""
        self._require_likelihood()
        if num_initial < 1 or num_draws < 2:
            raise ValueError("noise_share needs num_initial >= 1 and num_draws >= 2")
        if self.config.initial_noise == "zero":
            num_initial, num_draws = 1, num_initial * num_draws
        cache = self.encode(obs)
        n, reps = cache.pad.shape[0], num_initial * num_draws
        x_1 = self._initial_noise(n * num_initial, generator).repeat_interleave(num_draws, dim=0)
        many = cache.repeat(reps)

        def step(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
            velocity, hidden = self._velocity(x, t, many)
            return velocity, *self._transition(x, velocity, hidden, t)

        chain = sample_chain(
            x_1,
            self.num_steps,
            step,
            stochastic=True,
            one_step=self._one_step(),
            sampled_dims=self.action_dim,
            generator=generator,
        ).chain
        actions = self._likelihood_slice(chain[:, -1, :, : self.action_dim])
        actions = actions.reshape(n, num_initial, num_draws, -1).double()
        within = actions.var(dim=2).mean(dim=1).sum(dim=-1)
        total = actions.reshape(n, reps, -1).var(dim=1).sum(dim=-1)
        return float(within.sum() / total.sum()) if float(total.sum()) > 0 else float("nan")

    def evaluate(self, obs: dict[str, object], stored: dict[str, torch.Tensor]) -> EvalOutput:
        """Recompute the stored chains' log-probs with the current weights (one VLM pass, all K
        steps of every sample in one batched expert pass)."""
        self._require_likelihood()
        chain = self._check_chain(stored)
        n, k = chain.shape[0], self.num_steps
        cache = self.encode(obs)
        x_t, _, t = chain_steps(chain)
        velocity, hidden = self._velocity(x_t, t, cache.repeat(k))
        mean, std = self._transition(x_t, velocity, hidden, t)
        sde_step = stored.get("sde_step") if self._one_step() else None
        if self._one_step() and sde_step is None:
            raise ConfigError(
                "model.sde_mode=one needs stored['sde_step'] from act(); the rollout was made "
                "with a different sampler setting than the learner"
            )
        stochastic = stochastic_step_mask(n, k, sde_step, chain.device)
        with _fp32(chain.device):
            logprob, entropy = chain_log_likelihood(
                chain, mean, std, stochastic, self.action_dim, self.config.initial_noise == "random"
            )
        gaussians = chain_step_gaussians(mean, std, stochastic, self._likelihood_slice)
        return EvalOutput(
            logprob=self._likelihood_slice(logprob),
            entropy=self._likelihood_slice(entropy),
            value=self._value(cache),
            gaussians=gaussians,
        )

    def _check_chain(self, stored: dict[str, torch.Tensor]) -> torch.Tensor:
        if "chain" not in stored:
            raise ConfigError(
                "stored data has no 'chain'; pass the `stored` dict that act() returned "
                f"(keys present: {sorted(stored)})"
            )
        chain = stored["chain"].to(self.device).float()
        expected = (self.num_steps + 1, self.action_horizon, self.config.max_action_dim)
        if chain.dim() != 4 or tuple(chain.shape[1:]) != expected:
            raise ConfigError(
                f"stored chain has shape {tuple(chain.shape)}, expected [N, {expected[0]}, "
                f"{expected[1]}, {expected[2]}]; the rollout used a different "
                "model.num_denoise_steps / action_horizon than the learner"
            )
        return chain

    # ----- supervised training and learner hooks -------------------------------------------------

    def bc_loss(
        self,
        obs: dict[str, object],
        action_chunk: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Flow matching on the env's action dims: regress v(x_t, t) onto noise - action."""
        expected = (self.action_horizon, self.action_dim)
        if action_chunk.dim() != 3 or tuple(action_chunk.shape[1:]) != expected:
            raise ConfigError(
                f"action_chunk has shape {tuple(action_chunk.shape)}; expected [N, "
                f"{expected[0]}, {expected[1]}] (N, action_horizon, action_dim)"
            )
        action = self.normalizer.normalize_action(action_chunk.to(self.device).float())
        action = pad_last_dim(action, self.config.max_action_dim)
        n = action.shape[0]
        cache = self.encode(obs)
        alpha, beta = self.config.bc_time_beta
        draw = torch.distributions.Beta(alpha, beta).sample((n,)).to(action.device)
        t = self.config.bc_time_min + (1.0 - self.config.bc_time_min) * draw
        noise = torch.randn_like(action)
        x_t = t[:, None, None] * noise + (1.0 - t[:, None, None]) * action
        velocity, _ = self._velocity(x_t, t, cache)
        error = (velocity - (noise - action))[..., : self.action_dim] ** 2
        loss = masked_mean(error, mask)
        return loss, {"bc_loss": float(loss.detach())}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {"policy": [], "value": []}
        for name, param in self.named_parameters():
            groups["value" if name.startswith(VALUE_HEAD_PREFIX) else "policy"].append(param)
        return groups

    def set_normalization(self, stats: dict[str, torch.Tensor]) -> None:
        self.normalizer.set_stats(stats)

    def normalization_stats(self) -> dict[str, torch.Tensor]:
        return self.normalizer.stats()
