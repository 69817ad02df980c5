"""The peer baseline script's GAE: ppo.py's done handling, against hand-computed values."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "peer_maniskill_ppo.py"


@pytest.fixture(scope="module")
def peer():
    spec = importlib.util.spec_from_file_location("peer_maniskill_ppo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gae_bootstraps_the_final_value_at_a_done_and_stops_there(peer):
    # one env, two steps; the episode ends after step 0 (V(final obs) = 0.4), step 1 runs on
    rewards = torch.tensor([[1.0], [2.0]])
    values = torch.tensor([[0.5], [0.25]])
    final_values = torch.tensor([[0.4], [0.0]])
    dones_after = torch.tensor([[1.0], [0.0]])
    adv = peer.gae(rewards, values, final_values, dones_after, torch.tensor([1.0]), 0.5, 1.0)
    # t=1: 2 + 0.5 * 1.0 - 0.25 = 2.25; t=0: 1 + 0.5 * 0.4 - 0.5 = 0.7 (nothing of t=1 flows back)
    assert torch.allclose(adv, torch.tensor([[0.7], [2.25]]))


def test_gae_without_dones_is_the_lambda_return(peer):
    rewards = torch.tensor([[1.0], [1.0]])
    values = torch.zeros(2, 1)
    adv = peer.gae(rewards, values, torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(1), 0.8, 0.9)
    assert torch.allclose(adv, torch.tensor([[1.0 + 0.8 * 0.9 * 1.0], [1.0]]))
