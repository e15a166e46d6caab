"""PyTorch re-implementation of cfpipe's causal video DiT (native/core/model.{h,cpp}, spec section 4).

Written from the spec and the engine's documented op semantics, not from upstream code. It loads
the engine's safetensors weights (upstream parameter names and shapes) and computes the same
three forward modes: full / block-causal, teacher forcing ([clean ; noisy] with shared RoPE
positions and the teacher-forcing mask), and streaming with a KV cache. Autograd gives the
backward. Runs only where PyTorch is (the GPU machine); nothing in the Node test suite imports it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Config:
    channels: int = 16
    patch_h: int = 2
    patch_w: int = 2
    dim: int = 1536
    ffn_dim: int = 8960
    heads: int = 12
    layers: int = 30
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    frames: int = 21
    height: int = 60
    width: int = 104
    frames_per_block: int = 3
    rope_theta: float = 10000.0
    eps: float = 1e-6

    @staticmethod
    def from_metadata(meta: dict) -> "Config":
        c = Config()
        for k in c.__dataclass_fields__:
            if k in meta:
                cur = getattr(c, k)
                setattr(c, k, type(cur)(float(meta[k])) if isinstance(cur, float) else int(meta[k]))
        return c

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def tokens_per_frame(self) -> int:
        return (self.height // self.patch_h) * (self.width // self.patch_w)

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_h * self.patch_w


def param_names(c: Config) -> list[str]:
    names = ["model.patch_embedding.weight", "model.patch_embedding.bias"]
    for lin in ["model.text_embedding.0", "model.text_embedding.2", "model.time_embedding.0",
                "model.time_embedding.2", "model.time_projection.1"]:
        names += [lin + ".weight", lin + ".bias"]
    for l in range(c.layers):
        b = f"model.blocks.{l}."
        names.append(b + "modulation")
        for p in "qkvo":
            names += [b + f"self_attn.{p}.weight", b + f"self_attn.{p}.bias"]
        names += [b + "self_attn.norm_q.weight", b + "self_attn.norm_k.weight", b + "norm3.weight", b + "norm3.bias"]
        for p in "qkvo":
            names += [b + f"cross_attn.{p}.weight", b + f"cross_attn.{p}.bias"]
        names += [b + "cross_attn.norm_q.weight", b + "cross_attn.norm_k.weight"]
        names += [b + "ffn.0.weight", b + "ffn.0.bias", b + "ffn.2.weight", b + "ffn.2.bias"]
    names += ["model.head.head.weight", "model.head.head.bias", "model.head.modulation"]
    return names


def attn_mask(kind: str, Tq: int, Tk: int, block_tokens: int, half_tokens: int = 0, device=None) -> torch.Tensor | None:
    """Boolean [Tq, Tk] mask (True = may attend) following backend.h's attn_allowed."""
    if kind == "full":
        return None
    i = torch.arange(Tq, device=device)[:, None]
    j = torch.arange(Tk, device=device)[None, :]
    if kind == "block_causal":
        return (j // block_tokens) <= (i // block_tokens)
    L = half_tokens
    clean_q = (i < L) & (j < L) & ((j // block_tokens) <= (i // block_tokens))
    bq = (i - L) // block_tokens
    noisy_q = (i >= L) & (((j < L) & ((j // block_tokens) < bq)) | ((j >= L) & (((j - L) // block_tokens) == bq)))
    return clean_q | noisy_q


class CausalDiT(torch.nn.Module):
    def __init__(self, config: Config, weights: dict[str, torch.Tensor]):
        super().__init__()
        self.c = config
        self.names = param_names(config)
        missing = [n for n in self.names if n not in weights]
        if missing:
            raise KeyError(f"weights lack {missing[:3]}...")
        self.p = torch.nn.ParameterList([torch.nn.Parameter(weights[n].clone().float()) for n in self.names])
        self.index = {n: i for i, n in enumerate(self.names)}

    def P(self, name: str) -> torch.Tensor:
        return self.p[self.index[name]]

    def lin(self, x, name):
        return F.linear(x, self.P(name + ".weight").reshape(self.P(name + ".weight").shape[0], -1), self.P(name + ".bias"))

    # ---- pieces ----
    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        half = self.c.freq_dim // 2
        w = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
        a = t.double()[..., None] * w
        return torch.cat([torch.cos(a), torch.sin(a)], -1).float()

    def rope_tables(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin [T_tok, hd/2] for the given per-slot frame positions."""
        c = self.c
        hd = c.head_dim
        ph = pw = hd // 6
        pt = hd // 2 - 2 * ph
        Wp, Lf = c.width // c.patch_w, c.tokens_per_frame
        dev = frames.device
        l = torch.arange(Lf, device=dev)
        f = frames.repeat_interleave(Lf).double()
        pos_h = (l // Wp).repeat(len(frames)).double()
        pos_w = (l % Wp).repeat(len(frames)).double()
        th = c.rope_theta
        ft = th ** (-2.0 * torch.arange(pt, device=dev, dtype=torch.float64) / (2 * pt))
        fh = th ** (-2.0 * torch.arange(ph, device=dev, dtype=torch.float64) / (2 * ph))
        fw = th ** (-2.0 * torch.arange(pw, device=dev, dtype=torch.float64) / (2 * pw))
        ang = torch.cat([f[:, None] * ft, pos_h[:, None] * fh, pos_w[:, None] * fw], 1)
        return torch.cos(ang).float(), torch.sin(ang).float()

    @staticmethod
    def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, H: int) -> torch.Tensor:
        B, T, D = x.shape
        xr = x.reshape(B, T, H, D // H // 2, 2)
        x0, x1 = xr[..., 0], xr[..., 1]
        c, s = cos[None, :, None, :], sin[None, :, None, :]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).reshape(B, T, D)

    def rms(self, x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c.eps) * self.P(name)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, F, C, H, W] -> [B, F*Hp*Wp, C*ph*pw], patch vector ordered (c, q, r)."""
        c = self.c
        B, Fr = x.shape[:2]
        Hp, Wp = c.height // c.patch_h, c.width // c.patch_w
        x = x.reshape(B, Fr, c.channels, Hp, c.patch_h, Wp, c.patch_w)
        return x.permute(0, 1, 3, 5, 2, 4, 6).reshape(B, Fr * Hp * Wp, c.patch_dim)

    def unpatchify(self, tok: torch.Tensor, Fr: int) -> torch.Tensor:
        """[B, F*Hp*Wp, ph*pw*C] (c fastest) -> [B, F, C, H, W]."""
        c = self.c
        B = tok.shape[0]
        Hp, Wp = c.height // c.patch_h, c.width // c.patch_w
        t = tok.reshape(B, Fr, Hp, Wp, c.patch_h, c.patch_w, c.channels)
        return t.permute(0, 1, 6, 2, 4, 3, 5).reshape(B, Fr, c.channels, c.height, c.width)

    def attend(self, q, k, v, mask):
        B, Tq, D = q.shape
        H = self.c.heads
        sh = lambda z: z.reshape(B, z.shape[1], H, D // H).transpose(1, 2)
        o = F.scaled_dot_product_attention(sh(q), sh(k), sh(v), attn_mask=mask)
        return o.transpose(1, 2).reshape(B, Tq, D)

    # ---- forward ----
    def forward(self, x, t, text, mode="full", x_clean=None, t_clean=0.0, cache=None, start_frame=0):
        """x [B, F, C, H, W], t [B, F], text [B, text_len, text_dim] -> flow [B, F, C, H, W].

        mode: "full", "block_causal", "teacher_forcing" or "stream" (with `cache` from make_cache:
        keys/values of this call go to their frame slots and the call attends to slots before it).
        """
        c = self.c
        B, Fr = x.shape[:2]
        D, Lf, H = c.dim, c.tokens_per_frame, c.heads
        tf = mode == "teacher_forcing"
        if tf:
            t_slots = torch.cat([torch.full_like(t, t_clean), t], 1)
            tokens = torch.cat([self.patchify(x_clean), self.patchify(x)], 1)
            frames = torch.arange(Fr, device=x.device).repeat(2)
        else:
            t_slots = t
            tokens = self.patchify(x)
            frames = torch.arange(Fr, device=x.device) + (start_frame if mode == "stream" else 0)
        S = t_slots.shape[1]
        e = self.lin(F.silu(self.lin(self.time_embedding(t_slots), "model.time_embedding.0")), "model.time_embedding.2")
        e0 = self.lin(F.silu(e), "model.time_projection.1")  # [B, S, 6D]
        xs = self.lin(tokens, "model.patch_embedding")
        ctx = self.lin(F.gelu(self.lin(text, "model.text_embedding.0"), approximate="tanh"), "model.text_embedding.2")
        cos, sin = self.rope_tables(frames)
        T = S * Lf
        if mode == "block_causal":
            mask = attn_mask("block_causal", T, T, c.frames_per_block * Lf, device=x.device)
        elif tf:
            mask = attn_mask("teacher_forcing", T, T, c.frames_per_block * Lf, Fr * Lf, device=x.device)
        else:
            mask = None
        per_tok = lambda m: m.repeat_interleave(Lf, 1)  # [B, S, D] -> [B, S*Lf, D]
        for l in range(c.layers):
            b = f"model.blocks.{l}."
            mod = (e0 + self.P(b + "modulation").reshape(1, 1, 6 * D)).reshape(B, S, 6, D)
            sh1, sc1, g1, sh2, sc2, g2 = (per_tok(mod[:, :, i]) for i in range(6))
            h = F.layer_norm(xs, (D,), eps=c.eps) * (1 + sc1) + sh1
            q = self.rope(self.rms(self.lin(h, b + "self_attn.q"), b + "self_attn.norm_q.weight"), cos, sin, H)
            k = self.rope(self.rms(self.lin(h, b + "self_attn.k"), b + "self_attn.norm_k.weight"), cos, sin, H)
            v = self.lin(h, b + "self_attn.v")
            if mode == "stream":
                s0 = start_frame * Lf
                cache["k"][l][:, s0:s0 + T] = k.detach() if not torch.is_grad_enabled() else k
                cache["v"][l][:, s0:s0 + T] = v.detach() if not torch.is_grad_enabled() else v
                k = torch.cat([cache["k"][l][:, :s0], k], 1)
                v = torch.cat([cache["v"][l][:, :s0], v], 1)
            xs = xs + g1 * self.lin(self.attend(q, k, v, mask), b + "self_attn.o")
            hq = F.layer_norm(xs, (D,), self.P(b + "norm3.weight"), self.P(b + "norm3.bias"), c.eps)
            cq = self.rms(self.lin(hq, b + "cross_attn.q"), b + "cross_attn.norm_q.weight")
            ck = self.rms(self.lin(ctx, b + "cross_attn.k"), b + "cross_attn.norm_k.weight")
            cv = self.lin(ctx, b + "cross_attn.v")
            xs = xs + self.lin(self.attend(cq, ck, cv, None), b + "cross_attn.o")
            h2 = F.layer_norm(xs, (D,), eps=c.eps) * (1 + sc2) + sh2
            ff = self.lin(F.gelu(self.lin(h2, b + "ffn.0"), approximate="tanh"), b + "ffn.2")
            xs = xs + g2 * ff
        if tf:
            xs = xs[:, Fr * Lf:]
            e = e[:, Fr:]
        hm = (e[:, :, None, :] + self.P("model.head.modulation").reshape(1, 1, 2, D))  # [B, F, 2, D]
        shift, scale = per_tok(hm[:, :, 0]), per_tok(hm[:, :, 1])
        out = self.lin(F.layer_norm(xs, (D,), eps=c.eps) * (1 + scale) + shift, "model.head.head")
        return self.unpatchify(out, Fr)

    def make_cache(self, B: int, device=None) -> dict:
        c = self.c
        M = c.frames * c.tokens_per_frame
        z = lambda: [torch.zeros(B, M, c.dim, device=device) for _ in range(c.layers)]
        return {"k": z(), "v": z()}
