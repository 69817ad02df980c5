import os

import pytest

from rl_post.config import ConfigError
from rl_post.learner.distributed import ensure_process_group, resolve_backend


def test_reused_group_restores_the_launcher_variables_deepspeed_checks(monkeypatch):
    ensure_process_group("gloo", 0, 1, "127.0.0.1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    ensure_process_group("gloo", 0, 1, "127.0.0.1")  # the group exists: reused
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == (
        "0",
        "1",
        "0",
    )


def test_reused_group_with_another_layout_is_an_error():
    ensure_process_group("gloo", 0, 1, "127.0.0.1")
    with pytest.raises(RuntimeError, match="expects rank 1 of 2"):
        ensure_process_group("gloo", 1, 2, "127.0.0.1")


def test_unknown_backend_names_the_choices():
    with pytest.raises(ConfigError, match="valid choices: auto, gloo, nccl"):
        resolve_backend("mpi")
