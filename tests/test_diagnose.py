"""`rl-post diagnose`: a short serial run with every update measurement on."""

import json
import math

import pytest

from rl_post.config import load_config
from rl_post.diagnose import diagnose_main
from tests.trainer_helpers import TINY

pytestmark = pytest.mark.e2e


def test_diagnose_reports_snr_post_update_kl_and_noise_share(tmp_path, capsys):
    cfg = load_config(
        "diagnose",
        [
            *TINY,
            f"output_root={tmp_path}",
            "runtime=serial",
            "diagnose.iterations=2",
            "train.critic_warmup_iterations=1",
            "learner.grad_snr_splits=2",
        ],
    )
    assert diagnose_main(cfg) == 0
    (run_dir,) = [p for p in (tmp_path / cfg.name).iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "diagnose.json").read_text())
    assert summary["updates"] == 2  # the warm-up update is run but not measured
    medians = summary["medians"]
    for key in ("learner/grad_snr", "learner/post_kl", "learner/noise_share"):
        assert math.isfinite(medians[key]), key
    assert 0.0 < medians["learner/noise_share"] <= 1.0
    assert medians["learner/post_kl"] >= 0.0
    assert "gradient SNR of the batch" in capsys.readouterr().out
