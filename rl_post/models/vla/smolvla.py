"""model=smolvla: LeRobot's SmolVLA (SmolVLM + a narrower Llama action expert) as an RL policy."""

from __future__ import annotations

import torch
from torch import nn

from rl_post.models.vla.config import VLAModelConfig
from rl_post.models.vla.ops import resize_with_pad_smolvla
from rl_post.models.vla.policy import VLAFlowPolicy
from rl_post.models.vla.smolvla_model import SmolVLAModel


class SmolVLAPolicy(VLAFlowPolicy):
    kind = "smolvla"

    @property
    def padding(self) -> str:  # type: ignore[override]
        return self.config.pad_language_to

    def build_network(self, cfg: VLAModelConfig) -> nn.Module:
        return SmolVLAModel(cfg)

    @property
    def vocab_size(self) -> int:
        return int(self.model.vlm_with_expert.vlm.config.text_config.vocab_size)

    def prepare_images(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """LeRobot's SmolVLAPolicy.prepare_images: resize with padding (left/top, black), then
        [0, 1] -> [-1, 1] as SigLIP expects."""
        width, height = self.config.image_size
        return [
            resize_with_pad_smolvla(img.permute(0, 3, 1, 2), width, height) * 2.0 - 1.0
            for img in images
        ]

    def vlm_module(self) -> nn.Module:
        return self.model.vlm_with_expert.vlm

    def vision_module(self) -> nn.Module:
        return self.model.vlm_with_expert.vlm.model.vision_model

    def unused_parameters(self) -> list[nn.Parameter]:
        return list(self.model.vlm_with_expert.vlm.lm_head.parameters())
