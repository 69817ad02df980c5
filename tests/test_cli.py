import pytest

from rl_post.cli import check_resume_overrides, main


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


def test_resume_with_other_overrides_names_what_would_be_ignored(capsys, tmp_path):
    assert main(["train", f"resume={tmp_path}", "train.iterations=9", "eval.every=40"]) == 2
    err = capsys.readouterr().err
    assert "eval.every=40 would be ignored" in err and "init_from=" in err
    assert "train.iterations=9" not in err.split("so ")[1]


def test_resume_may_change_the_iteration_budget():
    check_resume_overrides(["resume=runs/rl/20260101-000000", "train.iterations=40"])
    check_resume_overrides(["env=pickcube", "eval.every=40"])  # not a resume: anything goes
