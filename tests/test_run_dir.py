from concurrent.futures import ThreadPoolExecutor

from omegaconf import OmegaConf

from rl_post.run_dir import new_run_dir, write_config


def test_runs_started_in_the_same_second_get_distinct_directories(tmp_path, monkeypatch):
    monkeypatch.setattr("rl_post.run_dir.time.strftime", lambda _fmt: "20261203-120000")
    first = new_run_dir(str(tmp_path), "eval")
    write_config(first, OmegaConf.create({"a": 1}))
    second = new_run_dir(str(tmp_path), "eval")
    assert first.name == "20261203-120000" and second.name == "20261203-120000-1"
    assert (first / "config.yaml").read_text() == "a: 1\n"
    assert not any(second.iterdir())


def test_concurrent_claims_never_share_a_directory(tmp_path, monkeypatch):
    monkeypatch.setattr("rl_post.run_dir.time.strftime", lambda _fmt: "20261203-120000")
    with ThreadPoolExecutor(max_workers=8) as pool:
        dirs = list(pool.map(lambda _: new_run_dir(str(tmp_path), "sweep"), range(32)))
    assert len(set(dirs)) == 32
    assert all(d.is_dir() and d.parent == tmp_path / "sweep" for d in dirs)
