"""The native engine's GPU figures (from cuda_bench) against the PyTorch reference at the same
shapes and dtype (fp32, TF32 off): a teacher-forcing diffusion training step (forward + loss +
backward, no optimizer) and few-step streaming generation (4 warped steps per block + a cache
pass, KV cache), in eager mode and under torch.compile. Prints ratios (> 1 = native faster) and
model FLOP utilisation against 989 TFLOP/s with the formula.

Usage: python3 test/bench/cuda-bench.py NATIVE_JSON_LINE_FILE   (runs on the GPU machine)
"""
import json
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


def main(native_file: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    line = next(l for l in Path(native_file).read_text().splitlines() if l.startswith("JSON "))
    nat = json.loads(line[5:])
    c = Config(layers=nat["layers"], frames=nat["frames"], height=nat["height"], width=nat["width"])
    dev = "cuda"
    model = CausalDiT(c, random_weights(c, dev)).to(dev)
    B, Fr = 1, c.frames
    x0 = torch.randn(B, Fr, c.channels, c.height, c.width, device=dev)
    text = torch.randn(B, c.text_len, c.text_dim, device=dev)
    Lf, k = c.tokens_per_frame, c.frames_per_block
    steps = [1000.0, 937.5, 833.3, 625.0]  # the warped 4-step list (values only set the timestep input)

    def tf_step(fwd):
        def run():
            model.zero_grad(set_to_none=True)
            t = torch.rand(B, Fr, device=dev) * 1000
            eps = torch.randn_like(x0)
            s = (t / 1000)[..., None, None, None]
            xt = (1 - s) * x0 + s * eps
            v = fwd(xt, t, text, mode="teacher_forcing", x_clean=x0)
            loss = ((v - (eps - x0)) ** 2).mean()
            loss.backward()
        return run

    def generate(fwd):
        def run():
            with torch.no_grad():
                cache = model.make_cache(B, dev)
                out = []
                for f0 in range(0, Fr, k):
                    x = torch.randn(B, k, c.channels, c.height, c.width, device=dev)
                    for i, tv in enumerate(steps):
                        t = torch.full((B, k), tv, device=dev)
                        v = fwd(x, t, text, mode="stream", cache=cache, start_frame=f0)
                        x0h = x - (tv / 1000) * v
                        if i + 1 < len(steps):
                            s = steps[i + 1] / 1000
                            x = (1 - s) * x0h + s * torch.randn_like(x0h)
                    fwd(x0h, torch.zeros(B, k, device=dev), text, mode="stream", cache=cache, start_frame=f0)
                    out.append(x0h)
            return torch.cat(out, 1)
        return run

    def first_block(fwd):
        def run():
            with torch.no_grad():
                cache = model.make_cache(B, dev)
                x = torch.randn(B, k, c.channels, c.height, c.width, device=dev)
                for tv in steps:
                    fwd(x, torch.full((B, k), tv, device=dev), text, mode="stream", cache=cache, start_frame=0)
        return run

    results = {}
    compiled = torch.compile(model)
    for label, fwd in [("eager", model), ("compile", compiled)]:
        t0 = time.perf_counter()
        results[label] = {
            "tf_ms": cuda_time_ms(tf_step(fwd)),
            "gen_ms": cuda_time_ms(generate(fwd)),
            "first_block_ms": cuda_time_ms(first_block(fwd)),
        }
        print(f"PyTorch {label}: {results[label]} (incl. warm-up/compile {time.perf_counter() - t0:.1f} s)", flush=True)

    T = 2 * Fr * Lf
    pairs_tf = int(attn_mask("teacher_forcing", T, T, k * Lf, Fr * Lf).sum())
    tf_flops = 3 * forward_flops(c, T, pairs_tf)  # forward + backward (2x forward)
    print()
    print(f"Shapes: dim {c.dim}, heads {c.heads}, ffn {c.ffn_dim}, layers {c.layers}, {Fr} frames x {Lf} tokens, "
          f"text {c.text_len}x{c.text_dim}, batch {B}, fp32 (TF32 off) on both sides")
    print(f"{'':34}{'native ms':>12}{'eager ms':>12}{'compile ms':>12}{'vs eager':>10}{'vs compile':>11}")
    for key, name in [("tf_ms", "TF diffusion step (fwd+bwd)"), ("gen_ms", "few-step generation (4 steps)"),
                      ("first_block_ms", "first-block latency")]:
        n, e, cpl = nat[key], results["eager"][key], results["compile"][key]
        print(f"{name:34}{n:12.2f}{e:12.2f}{cpl:12.2f}{e / n:9.2f}x{cpl / n:10.2f}x")
    print(f"{'ODE regression step (native only)':34}{nat['ode_ms']:12.2f}")
    print(f"{'causal CD step (native only)':34}{nat['cd_ms']:12.2f}")
    print(f"{'DMD generator step (native only)':34}{nat['dmd_gen_ms']:12.2f}")
    print(f"{'DMD critic step (native only)':34}{nat['dmd_critic_ms']:12.2f}")
    print(f"Generation: native {Fr / nat['gen_ms'] * 1000:.2f} latent frames/s, eager "
          f"{Fr / results['eager']['gen_ms'] * 1000:.2f}, compile {Fr / results['compile']['gen_ms'] * 1000:.2f}")
    print()
    print("MFU = model FLOPs of the step / step time / 989e12, model FLOPs = 3 x forward FLOPs, forward FLOPs =")
    print("  layers x [2 N (6 D^2 + 2 D Ff) + 2 Lt 2 D^2 + 4 P D + 4 N Lt D] + 4 N Pd D + 2 Lt (Dt D + D^2)")
    print(f"  with N = {T} tokens (clean + noisy), P = {pairs_tf} visible attention pairs, Lt = {c.text_len}, "
          f"Pd = {c.patch_dim}, Dt = {c.text_dim}: {tf_flops / 1e12:.3f} TFLOP per TF step")
    for label, ms in [("native", nat["tf_ms"]), ("eager", results["eager"]["tf_ms"]),
                      ("compile", results["compile"]["tf_ms"])]:
        tfs = tf_flops / (ms / 1000)
        print(f"  {label:8} {tfs / 1e12:8.2f} TFLOP/s = MFU {100 * tfs / PEAK:.2f}% of 989 TFLOP/s")


if __name__ == "__main__":
    main(sys.argv[1])
