import json

from rl_post.cli import main as cli_main
from rl_post.rewards.curves import main as curves_main
from rl_post.rewards.curves import read_curve


def test_reward_train_command_composes_its_config(capsys):
    assert cli_main(["reward", "train", "reward_train.fit.epochs=3", "--cfg"]) == 0
    out = capsys.readouterr().out
    assert "reward_train:" in out and "epochs: 3" in out


def _write_run(folder, rates):
    folder.mkdir(parents=True)
    rows = []
    for i, rate in enumerate(rates):
        row = {"iteration": i + 1, "perf/env_steps": 100.0 * (i + 1)}
        if rate is not None:
            row["rollout/success_rate"] = rate
        rows.append(json.dumps(row))
    (folder / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def test_curves_skip_iterations_without_episodes_and_write_a_png(tmp_path):
    a = _write_run(tmp_path / "a" / "stamp", [0.0, None, 0.5])
    b = _write_run(tmp_path / "b" / "stamp", [0.25, 0.25])
    assert read_curve(a, "rollout/success_rate", "perf/env_steps") == ([100.0, 300.0], [0.0, 0.5])
    out = tmp_path / "curves.png"
    assert curves_main([str(a), str(b), "--labels", "true", "learned", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
