"""Phase 2 (throw-away venv with lerobot 0.4.4 --no-deps): load rl_post's LeRobot folders with
LeRobot's own loaders (SmolVLAPolicy.from_pretrained strict, PolicyProcessorPipeline) and compare
LeRobot's velocity field, ODE samples and training losses with rl_post's for the same noise."""

import json
import shutil
import sys
import types
from pathlib import Path

import lerobot
import torch

# lerobot.policies/__init__ imports every policy (groot needs diffusers); load only SmolVLA's modules
_pkg = types.ModuleType("lerobot.policies")
_pkg.__path__ = [str(Path(lerobot.__file__).parent / "policies")]
sys.modules["lerobot.policies"] = _pkg
import lerobot.policies.smolvla.smolvlm_with_expert as swe  # noqa: E402 (after the package shim above)
from transformers import AutoTokenizer, SmolVLMConfig  # noqa: E402

# SmolVLA builds its VLM from AutoConfig(vlm_model_name) and asks AutoProcessor only for two
# image-token ids (unused with add_image_special_tokens=False); offline we give it a local config
# folder and a stand-in processor.
swe.AutoProcessor = types.SimpleNamespace(
    from_pretrained=lambda *_a, **_k: types.SimpleNamespace(
        tokenizer=types.SimpleNamespace(fake_image_token_id=0, global_image_token_id=1)
    )
)
import lerobot.policies.smolvla.processor_smolvla  # noqa: E402,F401  (registers its new-line step)
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy, make_att_2d_masks  # noqa: E402
from lerobot.processor import PolicyProcessorPipeline  # noqa: E402

root = Path(sys.argv[1])
data = torch.load(root / "phase1.pt", weights_only=False)
report = {}
for attention, d in data.items():
    src = Path(d["folder"])
    work = root / f"lerobot_{attention}"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(src, work)
    vlm_dir = root / "tiny_smolvlm"
    SmolVLMConfig(**d["vlm_config"]).save_pretrained(vlm_dir)
    cfg = json.loads((work / "config.json").read_text())
    cfg["vlm_model_name"] = str(vlm_dir)
    (work / "config.json").write_text(json.dumps(cfg))
    policy = SmolVLAPolicy.from_pretrained(str(work), strict=True).eval()
    tok = AutoTokenizer.from_pretrained(str(work))
    pre = PolicyProcessorPipeline.from_pretrained(
        str(work),
        config_filename="policy_preprocessor.json",
        overrides={"tokenizer_processor": {"tokenizer": tok}},
    )
    from lerobot.processor.converters import (
        policy_action_to_transition,
        transition_to_policy_action,
    )

    post = PolicyProcessorPipeline.from_pretrained(
        str(work),
        config_filename="policy_postprocessor.json",
        to_transition=policy_action_to_transition,
        to_output=transition_to_policy_action,
    )
    batch = {"observation.state": d["state"], "task": d["instructions"]}
    for key, img in zip(d["image_keys"], d["images"], strict=True):
        batch[key] = img
    processed = pre(batch)
    r = {}
    r["tokens_equal"] = bool(torch.equal(processed["observation.language.tokens"], d["tokens"]))
    r["state_max_abs"] = float((processed["observation.state"] - d["normalized_state"]).abs().max())
    images, img_masks = policy.prepare_images(processed)
    state = policy.prepare_state(processed)
    lang, lang_mask = (
        processed["observation.language.tokens"],
        processed["observation.language.attention_mask"],
    )
    m = policy.model
    with torch.no_grad():
        pe, pp, pa = m.embed_prefix(images, img_masks, lang, lang_mask, state=state)
        att = make_att_2d_masks(pp, pa)
        pos = torch.cumsum(pp, dim=1) - 1
        _, kv = m.vlm_with_expert.forward(
            attention_mask=att,
            position_ids=pos,
            past_key_values=None,
            inputs_embeds=[pe, None],
            use_cache=True,
            fill_kv_cache=True,
        )
        v = m.denoise_step(pp, kv, d["x_t"], d["t"])
        r["velocity_max_abs"] = float((v - d["velocity"]).abs().max())
        sample = m.sample_actions(
            images, img_masks, lang, lang_mask, state, noise=d["noise"].clone()
        )
        r["ode_sample_max_abs"] = float((sample - d["ode_sample"]).abs().max())
        chunk = policy.predict_action_chunk(dict(processed), noise=d["noise"].clone())
        actions = post(chunk)
        r["actions_max_abs"] = float((actions - d["actions_unnormalized"]).abs().max())
        # LeRobot's training forward (whole sequence, no cache) with the same noise and time
        norm_batch = pre({**batch, "action": d["train_actions"]})
        losses = m.forward(
            images,
            img_masks,
            lang,
            lang_mask,
            state,
            policy.prepare_action(norm_batch),
            d["noise"].clone(),
            d["t"],
        )
        r["train_losses_max_abs"] = float((losses - d["train_losses"]).abs().max())
    report[attention] = r
print(json.dumps(report, indent=2))
(root / "parity_report.json").write_text(json.dumps(report, indent=2))
