import pytest

from rl_post.cli import main


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bench", "sim", "--cfg"], "num_envs_list"),
        (["bench", "train", "--cfg"], "bench:"),
        (["reward", "train", "--cfg"], "reward_train"),
        (["sweep", "--cfg"], "sweep:"),
    ],
)
def test_two_word_commands_route_to_their_configs(argv, expected, capsys):
    assert main(argv) == 0
    assert expected in capsys.readouterr().out


def test_malformed_override_is_one_clear_line(capsys):
    assert main(["train", "env.num_envs=[1"]) == 2
    err = capsys.readouterr().err
    assert "cannot parse override" in err and "Traceback" not in err


def test_unknown_command_lists_the_commands(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_a_train_preset_given_to_eval_names_the_mismatch(capsys):
    assert main(["eval", "presets=flow_grpo_rl", "--cfg"]) == 2
    err = capsys.readouterr().err
    assert "preset 'flow_grpo_rl' sets the" in err and "another command" in err
