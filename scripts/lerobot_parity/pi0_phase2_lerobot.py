"""Phase 2 for pi0 (throw-away lerobot venv). LeRobot's pi0 needs a patched transformers (adaptive
RMSNorm with `cond=`, gated residuals, an install check); with pi0's cond=None those reduce to
stock Gemma, which these shims provide. LeRobot's merged-layer TRAINING path
(PaliGemmaWithExpertModel.forward with both inputs -> compute_layer_complete) then runs as written.
Its KV-cached inference path calls the patched GemmaModel.forward (no embedding normalizer) and is
not run here. The tiny shapes replace LeRobot's fixed tables (gemma_2b / gemma_300m, SigLIP
intermediate 4304, projection 2048) so the model is small; every equation is LeRobot's."""

import json
import sys
import types
from pathlib import Path

import lerobot
import torch

_pkg = types.ModuleType("lerobot.policies")
_pkg.__path__ = [str(Path(lerobot.__file__).parent / "policies")]
sys.modules["lerobot.policies"] = _pkg
check = types.ModuleType("transformers.models.siglip.check")
check.check_whether_transformers_replace_is_installed_correctly = lambda: True
sys.modules["transformers.models.siglip.check"] = check
import transformers.models.siglip as siglip_pkg  # noqa: E402

siglip_pkg.check = check
from transformers.models.gemma import modeling_gemma  # noqa: E402

_norm_forward = modeling_gemma.GemmaRMSNorm.forward
modeling_gemma.GemmaRMSNorm.forward = lambda self, x, cond=None: (_norm_forward(self, x), None)
modeling_gemma._gated_residual = lambda x, y, gate: x + y if gate is None else x + y * gate

data = torch.load(Path(sys.argv[1]) / "phase1_pi0.pt", weights_only=False)
import lerobot.policies.pi0.modeling_pi0 as mp  # noqa: E402
import lerobot.policies.pi0.processor_pi0  # noqa: E402,F401
from transformers import AutoTokenizer  # noqa: E402

pinned = {
    **data["vision"],
    "intermediate_size": data["vision"]["intermediate_size"],
    "projection_dim": data["variants"]["gemma_2b"]["width"],
}


_Orig = mp.PaliGemmaForConditionalGeneration


def tiny_paligemma(config):
    """LeRobot sets SigLIP's intermediate size 4304 and projection 2048 (gemma_2b's width); the
    tiny test shapes replace them right before the model is built."""
    for key, value in pinned.items():
        setattr(config.vision_config, key, value)
    return _Orig(config=config)


mp.PaliGemmaForConditionalGeneration = tiny_paligemma
mp.get_gemma_config = lambda v: mp.GemmaConfig(**data["variants"][v])
from lerobot.processor import PolicyProcessorPipeline  # noqa: E402

folder = data["folder"]
policy = mp.PI0Policy.from_pretrained(folder, strict=True).eval()
tok = AutoTokenizer.from_pretrained(folder)
pre = PolicyProcessorPipeline.from_pretrained(
    folder,
    config_filename="policy_preprocessor.json",
    overrides={"tokenizer_processor": {"tokenizer": tok}},
)
batch = {"observation.state": data["state"], "task": data["instructions"]}
for key, img in zip(data["image_keys"], data["images"], strict=True):
    batch[key] = img
processed = pre(batch)
report = {
    "tokens_equal": bool(torch.equal(processed["observation.language.tokens"], data["tokens"])),
    "state_max_abs": float((processed["observation.state"] - data["normalized_state"]).abs().max()),
}
images, img_masks = policy._preprocess_images(processed)
lang, lang_mask = (
    processed["observation.language.tokens"],
    processed["observation.language.attention_mask"],
)
state = policy.prepare_state(processed)
m = policy.model


def velocity(x_t, t):  # PI0Pytorch.forward up to v_t, with LeRobot's own functions
    pe, pp, pa = m.embed_prefix(images, img_masks, lang, lang_mask)
    se, sp, sa, cond = m.embed_suffix(state, x_t, t)
    pad = torch.cat([pp, sp], 1)
    att = torch.cat([pa, sa], 1)
    mask4 = m._prepare_attention_masks_4d(mp.make_att_2d_masks(pad, att))
    pos = torch.cumsum(pad, dim=1) - 1
    (_, out), _ = m.paligemma_with_expert.forward(
        attention_mask=mask4,
        position_ids=pos,
        past_key_values=None,
        inputs_embeds=[pe, se],
        use_cache=False,
        adarms_cond=[None, cond],
    )
    return m.action_out_proj(out[:, -m.config.chunk_size :].float())


with torch.no_grad():
    v = velocity(data["x_t"], data["t"])
    report["velocity_max_abs"] = float((v - data["velocity"]).abs().max())
    report["velocity_norm"] = float(v.norm())
    x = data["noise"].clone()
    k = data["num_steps"]
    for i in range(k):
        x = x + (-1.0 / k) * velocity(x, torch.full((3,), 1.0 - i / k))
    report["ode_sample_max_abs"] = float((x - data["ode_sample"]).abs().max())
print(json.dumps(report, indent=2))
(Path(sys.argv[1]) / "parity_report_pi0.json").write_text(json.dumps(report, indent=2))
