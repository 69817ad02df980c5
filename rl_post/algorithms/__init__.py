"""RL algorithm math as small pure tensor functions, selected by name (`algo=ppo|grpo|rloo`).

Entry points: `compute_advantages` (trainer/learner, per update batch) and `compute_loss`
(learner, per micro-batch). Building blocks live one concept per module: logprob, gae, group,
losses, stats, registry.
"""

from rl_post.algorithms.gae import gae
from rl_post.algorithms.group import (
    Trajectories,
    dynamic_sampling_mask,
    find_trajectories,
    grpo_advantages,
    rloo_advantages,
)
from rl_post.algorithms.logprob import LOGPROB_LEVELS, aggregate_logprob
from rl_post.algorithms.losses import entropy_loss, kl_penalty, ppo_policy_loss, value_loss
from rl_post.algorithms.objective import compute_advantages, compute_loss
from rl_post.algorithms.registry import (
    ALGORITHMS,
    AlgoSpec,
    get_algo_spec,
    register_algorithm,
    uses_critic,
    validate_algo_cfg,
)
from rl_post.algorithms.stats import (
    approx_kl,
    clip_fraction,
    explained_variance,
    normalize_advantages,
    ratio_mean_max,
)

__all__ = [
    "ALGORITHMS",
    "LOGPROB_LEVELS",
    "AlgoSpec",
    "Trajectories",
    "aggregate_logprob",
    "approx_kl",
    "clip_fraction",
    "compute_advantages",
    "compute_loss",
    "dynamic_sampling_mask",
    "entropy_loss",
    "explained_variance",
    "find_trajectories",
    "gae",
    "get_algo_spec",
    "grpo_advantages",
    "kl_penalty",
    "normalize_advantages",
    "ppo_policy_loss",
    "ratio_mean_max",
    "register_algorithm",
    "rloo_advantages",
    "uses_critic",
    "validate_algo_cfg",
    "value_loss",
]
