import pytest

from rl_post.config import ConfigError

from .helpers import make_policy


@pytest.mark.parametrize("name", ["flow_tiny", "token_tiny"])
def test_frozen_backbone_has_no_trainable_parameters_and_the_rest_trains(name):
    policy = make_policy(name, frozen_modules=["backbone"])
    for param_name, param in policy.named_parameters():
        assert param.requires_grad == (not param_name.startswith("backbone.")), param_name


def test_unknown_frozen_module_names_the_choices():
    with pytest.raises(ConfigError, match="'trunk'.*choose from backbone, value_head, expert"):
        make_policy("flow_tiny", frozen_modules=["trunk"])
