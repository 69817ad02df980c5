"""Phase 1 (project venv): a tiny random SmolVLA in rl_post, saved in LeRobot's layout, plus
inputs and rl_post's outputs for the same noise."""

import sys

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "tests"))
from models.vla.helpers import TINY_SMOLVLM, make_obs, make_policy

from rl_post.models import save_policy
from rl_post.models.vla.inputs import images_uint8, instructions, select_state
from rl_post.models.vla.ops import pad_last_dim

out_dir = sys.argv[1]
torch.manual_seed(0)
results = {}
for attention in ["cross_attn", "self_attn"]:
    policy = make_policy("smolvla", attention_mode=attention, seed=0).eval()
    with torch.no_grad():  # non-trivial normalization
        g = torch.Generator().manual_seed(9)
        policy.normalizer.state_a.copy_(torch.randn(9, generator=g))
        policy.normalizer.state_b.copy_(torch.rand(9, generator=g) + 0.5)
        policy.normalizer.action_a.copy_(torch.randn(4, generator=g) * 0.1)
        policy.normalizer.action_b.copy_(torch.rand(4, generator=g) + 0.2)
    folder = save_policy(policy, f"{out_dir}/smolvla_{attention}")
    obs = make_obs(3, seed=1)
    obs["instruction"] = ["pick up the red cube now", "go", "push"]
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(3, policy.action_horizon, 32, generator=gen)
    t = torch.tensor([1.0, 0.55, 0.2])
    noise = torch.randn(3, policy.action_horizon, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        cache = policy.encode(obs)
        velocity, _ = policy._velocity(x_t, t, cache)
        x = noise
        for i in range(policy.num_steps):
            tt = torch.full((3,), 1.0 - i / policy.num_steps)
            v, _ = policy._velocity(x, tt, cache)
            x = x - v / policy.num_steps
        state = select_state(obs, policy.layout, torch.device("cpu"))
        tokens, mask = policy.instruction_encoder(
            instructions(obs, policy.layout, 3), torch.device("cpu")
        )
        images = images_uint8(obs, policy.layout, torch.device("cpu"))  # [N,H,W,3] in [0,1]
        # flow-matching training loss for given noise/time (LeRobot forward's losses)
        actions = torch.rand(3, policy.action_horizon, 4)
        norm_actions = pad_last_dim(policy.normalizer.normalize_action(actions), 32)
        xt_train = t[:, None, None] * noise + (1 - t[:, None, None]) * norm_actions
        v_train, _ = policy._velocity(xt_train, t, cache)
        losses = (v_train - (noise - norm_actions)) ** 2
    results[attention] = {
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
        "actions_unnormalized": policy.normalizer.unnormalize_action(x[..., :4]),
        "train_actions": actions,
        "train_losses": losses,
        "vlm_config": TINY_SMOLVLM,
    }
torch.save(results, f"{out_dir}/phase1.pt")
print("phase1 done")
