"""A small Vision Transformer for CIFAR (patch 4, class token, learned positions, pre-norm).

Every Linear in the blocks (qkv, proj, MLP) and the head is prunable; the patch embedding,
class token, positional embedding and LayerNorms stay dense (as PEMN does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.layers import PrunableLinear


def num_heads(dim: int) -> int:
    """``dim // 64`` heads (at least 1), lowered until it divides ``dim``."""
    heads = max(1, dim // 64)
    while dim % heads:
        heads -= 1
    return heads


class Attention(nn.Module):
    """Multi-head self-attention: prunable qkv and output projections, SDPA in between."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.heads = num_heads(dim)
        self.qkv = PrunableLinear(dim, 3 * dim)
        self.proj = PrunableLinear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    """Prunable Linear(dim, hidden) -> GELU -> prunable Linear(hidden, dim)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = PrunableLinear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = PrunableLinear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT-W/D for square inputs of ``image_size``; the head reads the class token.

    Every Linear in the blocks and the head is prunable; embeddings and LayerNorm stay dense.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_classes: int,
        mlp_ratio: int = 2,
        patch: int = 4,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch, bias=True)
        self.num_patches = (image_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, dim))
        self.blocks = nn.Sequential(*(Block(dim, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.fc = PrunableLinear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        if x.shape[1] != self.num_patches:
            raise ValueError(
                f"ViT expects {self.num_patches} patches, got {x.shape[1]} (wrong input size)"
            )
        cls = self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + self.pos_embed.to(x.dtype)
        x = self.norm(self.blocks(x))
        return self.fc(x[:, 0])
