"""PyTorch parity of the native engine: loads the dump written by cfpipe_ref_dump (the engine's
weights in safetensors plus its outputs and gradients) and recomputes every forward mode and the
parameter gradients of sum(out * dout) with the PyTorch re-implementation.

Tolerance rule (the same as native/tests/test_cuda_parity.cpp, model level): an element a (engine)
matches b (PyTorch) when |a - b| <= tol * (rms(b) + |b|), tol = 1e-4, per output and per parameter
tensor. Both sides compute in fp32 (TF32 is switched off here) with different summation orders.

Usage: python3 test/reference/parity.py DUMP_DIR   (exit 1 on any mismatch)
"""
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from cfpipe_reference import CausalDiT, Config  # noqa: E402

TOL = 1e-4


def ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    scale = TOL * (b.pow(2).mean().sqrt().item() + b.abs())
    return ((a - b).abs() / scale.clamp_min(1e-300)).max().item()


def main(dump: str) -> int:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with safe_open(f"{dump}/weights.safetensors", "pt") as f:
        meta = f.metadata()
    cfg = Config.from_metadata(meta)
    B = int(meta["batch"])
    weights = {k: v.to(dev) for k, v in load_file(f"{dump}/weights.safetensors").items()}
    io = {k: v.to(dev) for k, v in load_file(f"{dump}/io.safetensors").items()}
    model = CausalDiT(cfg, weights).to(dev)
    shape = (B, cfg.frames, cfg.channels, cfg.height, cfg.width)
    x, xc, dout = io["x"].view(shape), io["x_clean"].view(shape), io["dout"].view(shape)
    t = io["t"].view(B, cfg.frames)
    text = io["text"].view(B, cfg.text_len, cfg.text_dim)
    failures = 0
    print(f"PyTorch parity on {dev} ({torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}), engine ran on "
          f"{meta['backend']}, tolerance {TOL} x (rms + |b|)")

    def check(name: str, engine: torch.Tensor, ref: torch.Tensor) -> None:
        nonlocal failures
        r = ratio(engine, ref)
        ok = r <= 1.0
        failures += 0 if ok else 1
        print(f"  {name:<60} worst {r:.3f} of tolerance {'ok' if ok else 'FAIL'}")

    for mode in ["full", "block_causal", "teacher_forcing"]:
        model.zero_grad(set_to_none=True)
        out = model(x, t, text, mode=mode, x_clean=xc if mode == "teacher_forcing" else None)
        check(f"forward {mode}", io[f"out.{mode}"].view(shape), out)
        (out * dout).sum().backward()
        worst, where = 0.0, ""
        for name, p in zip(model.names, model.p):
            ref = p.grad if p.grad is not None else torch.zeros_like(p)
            if ref.abs().max().item() == 0:
                continue
            r = ratio(io[f"grad.{mode}.{name}"].view(ref.shape), ref)
            if r > worst:
                worst, where = r, name
        ok = worst <= 1.0
        failures += 0 if ok else 1
        print(f"  {'param grads ' + mode:<60} worst {worst:.3f} of tolerance ({where}) {'ok' if ok else 'FAIL'}")
    with torch.no_grad():
        cache = model.make_cache(B, dev)
        k = cfg.frames_per_block
        outs = [model(x[:, f0:f0 + k], t[:, f0:f0 + k], text, mode="stream", cache=cache, start_frame=f0)
                for f0 in range(0, cfg.frames, k)]
        check("forward stream (KV cache, block by block)", io["out.stream"].view(shape), torch.cat(outs, 1))
    print("parity: all checks passed" if failures == 0 else f"parity: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
