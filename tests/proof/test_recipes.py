"""Every shipped recipe parses, and each stage's command line composes into a valid config (a
misspelt override in a recipe would otherwise surface an hour into a proof)."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rl_post.config import load_config
from rl_post.proof.recipe import parse_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs" / "recipe").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_stages_compose(path):
    recipe = parse_recipe(OmegaConf.to_container(OmegaConf.load(path), resolve=True))
    assert recipe.name == path.stem
    env = list(recipe.env)
    load_config("collect", [*env, f"collect.num_demos={recipe.num_demos}", *recipe.demo_overrides])
    sft = load_config("sft", [*env, *recipe.sft_overrides])
    train = load_config("train", [*env, *recipe.rl_overrides])
    load_config("eval", [*env, *recipe.eval_overrides])
    # the RL stage starts from the SFT stage's checkpoint: same model family and action chunking
    assert sft.model.name == train.model.name
    assert sft.model.action_horizon == train.model.action_horizon
    assert list(sft.env.tasks) == list(train.env.tasks)


def test_shipped_recipes_include_the_three_proofs():
    names = {p.stem for p in RECIPES}
    assert {"pickcube_flow_ppo", "pickcube_flow_grpo", "pickcube_token_grpo"} <= names
