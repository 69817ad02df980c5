"""The peer comparison: our eval rows and the peer's JSON become one PNG and one JSON."""

import json

import pytest

from rl_post.bench.peer_curves import compare, first_reaching, main


def write_run(folder, evals):
    folder.mkdir()
    rows = [{"iteration": 1, "perf/env_steps": 10.0}]  # a row without an eval is skipped
    for steps, successes in evals:
        rows.append({"perf/env_steps": steps, "eval/successes": successes, "eval/episodes": 100.0})
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_compare_writes_plot_and_both_curves(tmp_path):
    run = write_run(tmp_path / "run", [(0, 0), (50_000, 60), (100_000, 95)])
    other = write_run(tmp_path / "other", [(0, 0), (50_000, 10)])
    peer = tmp_path / "peer.json"
    peer.write_text(
        json.dumps(
            {
                "curve": [
                    {"env_steps": s, "successes": k, "episodes": 16}
                    for s, k in [(0, 0), (40_000, 8), (80_000, 12)]
                ],
                "big_evals": [{"env_steps": 80_000, "successes": 70, "episodes": 100}],
                "train_env_steps_per_s": 300.0,
            }
        )
    )
    out = tmp_path / "plot.png"
    result = compare([run, other], peer, out, labels=["ours", "ours b", "ManiSkill PPO"])
    assert out.stat().st_size > 0
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved == json.loads(json.dumps(result))
    ours, second = saved["ours"]
    assert second["label"] == "ours b" and second["summary"]["first_ge_50"] is None
    assert [p["env_steps"] for p in ours["curve"]] == [0, 50_000, 100_000]
    assert ours["summary"]["first_ge_50"] == 50_000 and ours["summary"]["first_ge_90"] == 100_000
    low, high = ours["curve"][2]["ci_low"], ours["curve"][2]["ci_high"]
    assert low == pytest.approx(0.8883, abs=1e-3) and high == pytest.approx(0.9785, abs=1e-3)
    assert saved["peer"]["summary"]["curve"]["first_ge_50"] == 40_000
    assert saved["peer"]["summary"]["big_evals"]["peak"]["successes"] == 70
    assert saved["peer"]["train_env_steps_per_s"] == 300.0


def test_first_reaching_and_missing_inputs(tmp_path):
    assert first_reaching([{"env_steps": 5, "success_rate": 0.4}], 0.5) is None
    run = write_run(tmp_path / "run", [])
    peer = tmp_path / "peer.json"
    peer.write_text(json.dumps({"curve": []}))
    with pytest.raises(ValueError, match="no evaluation rows"):
        main(["--ours", str(run), "--peer", str(peer), "--out", str(tmp_path / "x.png")])
    with pytest.raises(ValueError, match="one label per run"):
        compare([run], peer, tmp_path / "z.png", labels=["only one"])
    run2 = write_run(tmp_path / "run2", [(0, 1)])
    peer.write_text(json.dumps({"points": []}))
    with pytest.raises(ValueError, match="no 'curve'"):
        compare([run2], peer, tmp_path / "y.png")
