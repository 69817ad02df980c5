import pytest
import torch

from .helpers import RGB_SPEC, make_obs, make_policy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("name", ["flow_tiny", "token_tiny"])
def test_act_and_evaluate_on_cuda_match_cpu_shapes_and_reproduce(name):
    policy = make_policy(name, spec=RGB_SPEC).to("cuda")
    obs = make_obs(8, rgb=True)  # CPU tensors: the policy moves them
    gen = torch.Generator(device="cuda").manual_seed(0)
    out = policy.act(obs, generator=gen)
    assert out.actions.device.type == "cuda"
    evaluated = policy.evaluate(obs, out.stored)
    assert torch.allclose(evaluated.logprob, out.logprob, atol=1e-4)
    again = policy.act(obs, generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(again.actions, out.actions)
