"""Phase 1 for pi0 (project venv): a tiny pi0 whose 'gemma_2b' / 'gemma_300m' variants are tiny
(rl_post's model.gemma_variants overrides the names), vocab 257152 as LeRobot fixes it."""

import sys

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "tests"))
from models.vla.helpers import TINY_GEMMA, TINY_SIGLIP, make_obs, make_policy

from rl_post.models import save_policy
from rl_post.models.vla.inputs import images_uint8, instructions, select_state

out_dir = sys.argv[1]
# LeRobot's compute_layer_complete reshapes attention outputs to 8 heads: keep 8 heads here
variants = {
    "gemma_2b": {**TINY_GEMMA["gemma_tiny_vlm"], "num_heads": 8, "head_dim": 8},
    "gemma_300m": {**TINY_GEMMA["gemma_tiny_expert"], "num_heads": 8, "head_dim": 8},
}
policy = make_policy(
    "pi0",
    seed=0,
    paligemma_variant="gemma_2b",
    action_expert_variant="gemma_300m",
    gemma_variants=variants,
    vocab_size=257152,
).eval()
with torch.no_grad():
    g = torch.Generator().manual_seed(9)
    policy.normalizer.state_a.copy_(torch.randn(9, generator=g))
    policy.normalizer.state_b.copy_(torch.rand(9, generator=g) + 0.5)
    policy.normalizer.action_a.copy_(torch.randn(4, generator=g) * 0.1)
    policy.normalizer.action_b.copy_(torch.rand(4, generator=g) + 0.2)
folder = save_policy(policy, f"{out_dir}/pi0_tiny")
obs = make_obs(3, seed=1)
obs["instruction"] = ["pick up the red cube now", "go", "push"]
x_t = torch.randn(3, policy.action_horizon, 32, generator=torch.Generator().manual_seed(0))
t = torch.tensor([1.0, 0.55, 0.2])
noise = torch.randn(3, policy.action_horizon, 32, generator=torch.Generator().manual_seed(5))
with torch.no_grad():
    cache = policy.encode(obs)
    velocity, _ = policy._velocity(x_t, t, cache)
    x = noise
    for i in range(policy.num_steps):
        v, _ = policy._velocity(x, torch.full((3,), 1.0 - i / policy.num_steps), cache)
        x = x - v / policy.num_steps
    tokens, mask = policy.instruction_encoder(
        instructions(obs, policy.layout, 3), torch.device("cpu")
    )
    state = select_state(obs, policy.layout, torch.device("cpu"))
    images = images_uint8(obs, policy.layout, torch.device("cpu"))
torch.save(
    {
        "folder": str(folder),
        "state": state,
        "images": [im.permute(0, 3, 1, 2).contiguous() for im in images],
        "image_keys": list(policy.layout.image_keys),
        "instructions": obs["instruction"],
        "tokens": tokens,
        "token_mask": mask,
        "normalized_state": policy.normalizer.normalize_state(state),
        "x_t": x_t,
        "t": t,
        "velocity": velocity,
        "noise": noise,
        "ode_sample": x,
        "vision": TINY_SIGLIP,
        "variants": variants,
        "num_steps": policy.num_steps,
    },
    f"{out_dir}/phase1_pi0.pt",
)
print("phase1 pi0 done", float(velocity.norm()))
