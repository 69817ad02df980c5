"""model=pi0: LeRobot's pi0 (PaliGemma + a Gemma action expert, merged layers) as an RL policy."""

from __future__ import annotations

import torch
from torch import nn

from rl_post.models.vla.config import VLAModelConfig
from rl_post.models.vla.ops import resize_with_pad_pi0
from rl_post.models.vla.pi0_model import PI0Model
from rl_post.models.vla.policy import VLAFlowPolicy


class PI0Policy(VLAFlowPolicy):
    kind = "pi0"
    padding = "max_length"  # LeRobot's pi0 processor always pads to tokenizer_max_length

    def build_network(self, cfg: VLAModelConfig) -> nn.Module:
        return PI0Model(cfg)

    @property
    def vocab_size(self) -> int:
        return int(self.model.vocab_size)

    def prepare_images(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """LeRobot's PI0Policy._preprocess_images for channels-last [0, 1] images: resize with
        centred padding only when the size differs, then [0, 1] -> [-1, 1]. (As in the reference,
        the padding value -1 is applied before the rescaling, so padded pixels end at -3.)"""
        height, width = self.config.image_size
        out = []
        for img in images:
            if tuple(img.shape[1:3]) != (height, width):
                img = resize_with_pad_pi0(img, height, width)
            out.append((img * 2.0 - 1.0).permute(0, 3, 1, 2))
        return out

    def vlm_module(self) -> nn.Module:
        return self.model.paligemma_with_expert.paligemma

    def vision_module(self) -> nn.Module:
        return self.model.paligemma_with_expert.paligemma.model.vision_tower

    def unused_parameters(self) -> list[nn.Parameter]:
        net = self.model.paligemma_with_expert
        # PaliGemma's lm_head is tied to the token embeddings, which the prefix does use
        return list(net.gemma_expert.lm_head.parameters())
