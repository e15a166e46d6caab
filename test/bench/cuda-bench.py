"""The native engine's GPU figures (from cuda_bench) against the PyTorch reference at the same
shapes: one training step per objective (forward passes + loss + backward, no optimizer: teacher-
forcing diffusion, ODE regression, causal consistency distillation, DMD generator, DMD critic,
with the same forward/backward passes as native/core/objectives.cpp) and few-step streaming
generation (4 warped steps per block + a cache pass, KV cache; frames/s and first-block latency),
in eager mode and under torch.compile, in fp32 (TF32 off) against the engine's fp32 mode and in
bf16 autocast against its bf16 mode. Prints ratios (> 1 = native faster), model FLOP utilisation
against 989 TFLOP/s with the formula, and a bare torch.matmul bf16 reference for the GEMM table.

Usage (on the GPU machine):
  python3 test/bench/cuda-bench.py --torch-json OUT.json [--budget S]     measure PyTorch only
  python3 test/bench/cuda-bench.py NATIVE_FP32_LOG NATIVE_BF16_LOG [--cached OUT.json]   compare
The DMD steps draw their exit step at random (as the engine does), so they vary from run to run.
"""
import argparse
import contextlib
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from cfpipe_reference import CausalDiT, Config, attn_mask, param_names  # noqa: E402

PEAK = 989e12


def random_weights(c: Config, dev) -> dict:
    g = torch.Generator(device="cpu").manual_seed(0)
    shapes = {}
    D = c.dim
    for n in param_names(c):
        if n.endswith("modulation"):
            shapes[n] = (1, 6 if "blocks" in n else 2, D)
        elif n.endswith(".bias") or "norm" in n:
            out = {"ffn.0": c.ffn_dim, "head.head": c.patch_dim, "time_projection": 6 * D}
            shapes[n] = (next((v for k, v in out.items() if k in n), D),)
        elif n == "model.patch_embedding.weight":
            shapes[n] = (D, c.channels, 1, c.patch_h, c.patch_w)
        else:
            fan_in = {"text_embedding.0": c.text_dim, "time_embedding.0": c.freq_dim, "ffn.2": c.ffn_dim}
            fan_out = {"ffn.0": c.ffn_dim, "head.head": c.patch_dim, "time_projection": 6 * D}
            shapes[n] = (next((v for k, v in fan_out.items() if k in n), D), next((v for k, v in fan_in.items() if k in n), D))
    return {n: (torch.randn(s, generator=g) * 0.02).to(dev) for n, s in shapes.items()}


def forward_flops(c: Config, tokens: int, pairs: int) -> float:
    """2 x multiply-adds of one forward: linears on `tokens` tokens, text MLP and cross K/V on the
    text, self-attention over `pairs` visible (query, key) pairs, cross-attention to the text."""
    D, Ff, Lt = c.dim, c.ffn_dim, c.text_len
    per_layer = 2 * tokens * (6 * D * D + 2 * D * Ff) + 2 * Lt * 2 * D * D + 4 * pairs * D + 4 * tokens * Lt * D
    return c.layers * per_layer + 2 * tokens * 2 * c.patch_dim * D + 2 * Lt * (c.text_dim * D + D * D)


def cuda_time_ms(fn, iters=3) -> float:
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1000)
    return sorted(ts)[len(ts) // 2]


def workloads(model, fwd, c: Config, dev) -> dict:
    """name -> closure running one step of that workload through `fwd` (model or compiled)."""
    B, Fr = 1, c.frames
    x0 = torch.randn(B, Fr, c.channels, c.height, c.width, device=dev)
    text = torch.randn(B, c.text_len, c.text_dim, device=dev)
    text_u = torch.randn(B, c.text_len, c.text_dim, device=dev)
    traj = torch.randn(6, B, Fr, c.channels, c.height, c.width, device=dev)
    k = c.frames_per_block
    steps = [1000.0, 937.5, 833.3, 625.0]  # the warped 4-step list (values only set the timestep input)
    rng = random.Random(7)

    def tf_forward(x, t, txt):
        return fwd(x, t, txt, mode="teacher_forcing", x_clean=x0)

    def tf_step():
        model.zero_grad(set_to_none=True)
        t = torch.rand(B, Fr, device=dev) * 1000
        eps = torch.randn_like(x0)
        s = (t / 1000)[..., None, None, None]
        v = tf_forward((1 - s) * x0 + s * eps, t, text)
        ((v.float() - (eps - x0)) ** 2).mean().backward()

    def ode_step():
        model.zero_grad(set_to_none=True)
        i = rng.randrange(len(steps))
        t = torch.full((B, Fr), steps[i], device=dev)
        v = tf_forward(traj[i], t, text)
        x0h = traj[i] - (steps[i] / 1000) * v.float()
        ((x0h - traj[-1]) ** 2).mean().backward()

    def cd_step():
        model.zero_grad(set_to_none=True)
        t = torch.full((B, Fr), 750.0, device=dev)
        xt = 0.25 * x0 + 0.75 * torch.randn_like(x0)
        with torch.no_grad():
            vc, vu = tf_forward(xt, t, text).float(), tf_forward(xt, t, text_u).float()
            xtn = xt - 0.1 * (vu + 3.0 * (vc - vu))
            tgt = xtn - 0.65 * tf_forward(xtn, t - 100, text).float()  # the EMA target (same weights here)
        vs = tf_forward(xt, t, text).float()
        ((xt - 0.75 * vs - tgt) ** 2).mean().backward()

    def rollout(exit_index):
        """DMD's generator rollout (no grad): per block `exit_index + 1` denoising forwards and a
        cache pass; returns the video, the exit inputs and the cache."""
        cache = model.make_cache(B, dev)
        outs, exits = [], []
        with torch.no_grad():
            for f0 in range(0, Fr, k):
                x = torch.randn(B, k, c.channels, c.height, c.width, device=dev)
                for j in range(exit_index + 1):
                    if j == exit_index:
                        exits.append(x)
                    v = fwd(x, torch.full((B, k), steps[j], device=dev), text, mode="stream", cache=cache, start_frame=f0)
                    x0h = x - (steps[j] / 1000) * v.float()
                    if j < exit_index:
                        x = (1 - steps[j + 1] / 1000) * x0h + steps[j + 1] / 1000 * torch.randn_like(x0h)
                fwd(x0h, torch.zeros(B, k, device=dev), text, mode="stream", cache=cache, start_frame=f0)
                outs.append(x0h)
        return torch.cat(outs, 1), exits, cache

    def dmd_gen_step():
        model.zero_grad(set_to_none=True)
        e = rng.randrange(len(steps))
        xg, exits, cache = rollout(e)
        t = torch.full((B, Fr), 500.0, device=dev)
        xt = 0.5 * xg + 0.5 * torch.randn_like(xg)
        with torch.no_grad():  # fake score, real score cond + uncond (full attention)
            fake = xt - 0.5 * fwd(xt, t, text, mode="full").float()
            rc = xt - 0.5 * fwd(xt, t, text, mode="full").float()
            ru = xt - 0.5 * fwd(xt, t, text_u, mode="full").float()
            real = rc + 3.0 * (rc - ru)
            grad = (fake - real) / (xg - real).abs().mean().clamp_min(1e-12)
        for blk in reversed(range(len(exits))):  # recompute each exit forward with grad, then backward
            f0 = blk * k
            cc = {"k": [z.clone() for z in cache["k"]], "v": [z.clone() for z in cache["v"]]}
            v = fwd(exits[blk], torch.full((B, k), steps[e], device=dev), text, mode="stream", cache=cc, start_frame=f0)
            (v.float() * (-steps[e] / 1000) * grad[:, f0:f0 + k]).sum().backward()

    def dmd_critic_step():
        model.zero_grad(set_to_none=True)
        xg, _, _ = rollout(rng.randrange(len(steps)))
        t = torch.full((B, Fr), 500.0, device=dev)
        eps = torch.randn_like(xg)
        v = fwd(0.5 * xg + 0.5 * eps, t, text, mode="full")
        ((v.float() - (eps - xg)) ** 2).mean().backward()

    def generate():
        xg, _, _ = rollout(len(steps) - 1)
        return xg

    def first_block():
        with torch.no_grad():
            cache = model.make_cache(B, dev)
            x = torch.randn(B, k, c.channels, c.height, c.width, device=dev)
            for tv in steps:
                fwd(x, torch.full((B, k), tv, device=dev), text, mode="stream", cache=cache, start_frame=0)

    return {"tf_ms": tf_step, "ode_ms": ode_step, "cd_ms": cd_step, "dmd_gen_ms": dmd_gen_step,
            "dmd_critic_ms": dmd_critic_step, "gen_ms": generate, "first_block_ms": first_block}


KEYS = [("tf_ms", "TF diffusion step (fwd+bwd)"), ("ode_ms", "ODE regression step"), ("cd_ms", "causal CD step"),
        ("dmd_gen_ms", "DMD generator step"), ("dmd_critic_ms", "DMD critic step"),
        ("gen_ms", "few-step generation (4 steps)"), ("first_block_ms", "first-block latency")]


def measure_torch(c: Config, budget: float, combos: list[str], res: dict | None = None) -> dict:
    """PyTorch eager and compiled, fp32 (TF32 off) and bf16 autocast: {dtype: {mode: {key: ms}}},
    for the "dtype:mode" combos asked for (merged into `res`)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # Each stream start frame, grad mode and autocast state is its own graph: allow them all, or
    # dynamo silently falls back to eager after 8.
    torch._dynamo.config.recompile_limit = 64
    dev = "cuda"
    t_start = time.perf_counter()
    model = CausalDiT(c, random_weights(c, dev)).to(dev)
    res = res or {"fp32": {}, "bf16": {}}
    res["shapes"] = {"layers": c.layers, "frames": c.frames, "height": c.height, "width": c.width}
    for combo in combos:
        dtype, label = combo.split(":")
        torch._dynamo.reset()
        fwd = torch.compile(model) if label == "compile" else model
        out = res[dtype].setdefault(label, {})
        t0 = time.perf_counter()
        for key, fn in workloads(model, fwd, c, dev).items():
            if time.perf_counter() - t_start > budget:
                print(f"PyTorch {dtype} {label}: {key} skipped (budget {budget:.0f} s spent)", flush=True)
                continue
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
            with ctx:
                out[key] = cuda_time_ms(fn)
        print(f"PyTorch {dtype} {label}: {out} ({time.perf_counter() - t0:.1f} s incl. warm-up/compile)", flush=True)
    return res


def native_json(path: str) -> dict:
    line = next(l for l in Path(path).read_text().splitlines() if l.startswith("JSON "))
    return json.loads(line[5:])


def compare(nat: dict, torch_res: dict, c: Config) -> None:
    prec = nat["precision"]
    eager, comp = torch_res[prec].get("eager", {}), torch_res[prec].get("compile", {})
    print(f"\n== {prec}: native {prec} vs PyTorch {'bf16 autocast' if prec == 'bf16' else 'fp32 (TF32 off)'}")
    print(f"{'':34}{'native ms':>12}{'eager ms':>12}{'compile ms':>12}{'vs eager':>10}{'vs compile':>11}")
    nan = float("nan")
    for key, name in KEYS:
        n, e, cpl = nat[key], eager.get(key, nan), comp.get(key, nan)
        print(f"{name:34}{n:12.2f}{e:12.2f}{cpl:12.2f}{e / n:9.2f}x{cpl / n:10.2f}x")
    Fr = c.frames
    print(f"Generation: native {Fr / nat['gen_ms'] * 1000:.2f} latent frames/s, eager "
          f"{Fr / eager.get('gen_ms', nan) * 1000:.2f}, compile {Fr / comp.get('gen_ms', nan) * 1000:.2f}")
    Lf, k = c.tokens_per_frame, c.frames_per_block
    T = 2 * Fr * Lf
    pairs_tf = int(attn_mask("teacher_forcing", T, T, k * Lf, Fr * Lf).sum())
    tf_flops = 3 * forward_flops(c, T, pairs_tf)  # forward + backward (2x forward)
    print("MFU = model FLOPs of the TF step / step time / 989e12, model FLOPs = 3 x forward FLOPs, forward FLOPs =")
    print("  layers x [2 N (6 D^2 + 2 D Ff) + 2 Lt 2 D^2 + 4 P D + 4 N Lt D] + 4 N Pd D + 2 Lt (Dt D + D^2)")
    print(f"  with N = {T} tokens (clean + noisy), P = {pairs_tf} visible attention pairs, Lt = {c.text_len}, "
          f"Pd = {c.patch_dim}, Dt = {c.text_dim}: {tf_flops / 1e12:.3f} TFLOP per TF step")
    for label, ms in [("native", nat["tf_ms"]), ("eager", eager.get("tf_ms", nan)), ("compile", comp.get("tf_ms", nan))]:
        tfs = tf_flops / (ms / 1000)
        print(f"  {label:8} {tfs / 1e12:8.2f} TFLOP/s = MFU {100 * tfs / PEAK:.2f}% of 989 TFLOP/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("native", nargs="*")
    ap.add_argument("--torch-json")
    ap.add_argument("--cached")
    ap.add_argument("--budget", type=float, default=400)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--measure", default="bf16:eager,bf16:compile,fp32:eager,fp32:compile",
                    help="dtype:mode combos to measure (with --cached: re-measured and merged)")
    a = ap.parse_args()
    torch_res = json.loads(Path(a.cached).read_text()) if a.cached else None
    if not a.cached or a.torch_json:
        sh = native_json(a.native[0]) if a.native else {"layers": a.layers, "frames": 9, "height": 30, "width": 52}
        torch_res = measure_torch(Config(layers=sh["layers"], frames=sh["frames"], height=sh["height"], width=sh["width"]),
                                  a.budget, a.measure.split(","), torch_res)
        if a.torch_json:
            Path(a.torch_json).write_text(json.dumps(torch_res))
    for path in a.native:
        nat = native_json(path)
        compare(nat, torch_res, Config(layers=nat["layers"], frames=nat["frames"], height=nat["height"], width=nat["width"]))


if __name__ == "__main__":
    main()
