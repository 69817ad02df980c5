import pytest
import torch

from rl_post.config import ConfigError
from rl_post.rewards.shaping import first_events, potential_shaping, resolve_potential


def test_potential_shaping_by_hand_with_zero_terminal_potential():
    f = potential_shaping(
        torch.tensor([0.2, 0.5]), torch.tensor([0.6, 0.9]), torch.tensor([False, True]), gamma=0.9
    )
    assert f.tolist() == pytest.approx([0.9 * 0.6 - 0.2, -0.5])


def test_shaping_telescopes_over_an_episode():
    # Discounted sum of F over s0..s3 (s3 terminal) = gamma^3 * 0 - Phi(s0): independent of the path.
    gamma, phi = 0.9, torch.tensor([0.1, 0.7, 0.3, 0.8])
    terminal = torch.tensor([False, False, True])
    f = potential_shaping(phi[:-1], phi[1:], terminal, gamma)
    discounted = sum(gamma**t * float(f[t]) for t in range(3))
    assert discounted == pytest.approx(-0.1)


def test_first_events_fire_once_per_episode_across_segments():
    events = torch.tensor([[0, 1], [1, 1], [1, 0]], dtype=torch.bool)
    done = torch.tensor([[0, 0], [1, 0], [0, 0]], dtype=torch.bool)
    first, fired = first_events(events, done, torch.zeros(2, dtype=torch.bool))
    assert first.int().tolist() == [[0, 1], [1, 0], [1, 0]]
    assert fired.tolist() == [True, True]
    # Next segment: env 1's episode continues and already fired; env 0's too.
    again, _ = first_events(
        torch.ones(1, 2, dtype=torch.bool), torch.zeros(1, 2, dtype=torch.bool), fired
    )
    assert again.int().tolist() == [[0, 0]]


def test_user_potential_is_resolved_and_bad_specs_name_the_fix():
    assert resolve_potential("math:fabs")(-2.0) == 2.0
    with pytest.raises(ConfigError, match="package.module:function"):
        resolve_potential("no_colon")
    with pytest.raises(ConfigError, match="cannot be imported"):
        resolve_potential("math:no_such_function")
