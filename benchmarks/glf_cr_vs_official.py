"""GLF-CR forward on CPU: cloudfree against the official implementation, side by side.

The official code is NOT part of this project. Fetch it yourself into a scratch directory, e.g.
``git clone https://github.com/xufangchn/GLF-CR /tmp/GLF-CR``, and pass ``--official-repo``.
Its CUDA-only ``KernelConv2D`` is replaced at import time by the repository's own pure-PyTorch
fallback ``submodules.kernel2d_conv`` (the unfold-based CPU path), and ``timm.models.layers`` by
a minimal stand-in (DropPath is the identity in eval mode), exactly as the parity fixtures were
produced. Nothing of the official code is copied or modified.

Both models get the same weights (the official model's random initialisation, converted with
our converter) and the same input; the script checks that the outputs agree and reports the
median forward latency and the peak extra memory of each, measured in separate fresh processes
one after the other, and their ratio.

    python benchmarks/glf_cr_vs_official.py --official-repo /tmp/GLF-CR --size 256
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import max_abs_difference, measure, run_worker, side_by_side_parser  # noqa: E402


def _install_official_stubs(codes: Path) -> None:
    """Make the official ``codes/net_CR_RDN.py`` importable on CPU without timm or CUDA."""
    from torch import nn

    class DropPath(nn.Module):  # identity in eval mode, which is all we run
        def __init__(self, drop_prob: float = 0.0) -> None:
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    def to_2tuple(x):  # noqa: ANN001, ANN202
        return x if isinstance(x, tuple) else (x, x)

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.to_2tuple = DropPath, to_2tuple
    layers.trunc_normal_ = nn.init.trunc_normal_
    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    timm.models, models.layers = models, layers
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})

    sys.path.insert(0, str(codes))
    import submodules  # the official repository's own module

    class KernelConv2D(nn.Module):
        def __init__(self, ksize: int) -> None:
            super().__init__()
            self.ksize = ksize

        def forward(self, feat: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
            return submodules.kernel2d_conv(feat, kernel, self.ksize)

    kc = types.ModuleType("FAC.kernelconv2d.KernelConv2D")
    kc.KernelConv2D = KernelConv2D
    pkg = types.ModuleType("FAC.kernelconv2d")
    pkg.KernelConv2D = kc
    fac = types.ModuleType("FAC")
    fac.kernelconv2d = pkg
    sys.modules.update({"FAC": fac, "FAC.kernelconv2d": pkg, "FAC.kernelconv2d.KernelConv2D": kc})


def _inputs(size: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 13, size, size, generator=g), torch.rand(
        batch, 2, size, size, generator=g
    )


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    optical, sar = _inputs(args.size, args.batch)
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    if args.worker == "official":
        _install_official_stubs(Path(args.official_repo) / "codes")
        import net_CR_RDN

        model = net_CR_RDN.RDN_residual_CR(args.size)
        model.load_state_dict(state)

        def run() -> torch.Tensor:
            return model(optical, sar)
    else:
        from cloudfree.models import create_model, get_model_info

        model = create_model("glf_cr")
        model.load_state_dict(get_model_info("glf_cr").official_converter(state))

        def run() -> torch.Tensor:
            return model(optical=optical, sar=sar)

    model.eval()
    with torch.no_grad():
        result = measure(run, repeats=args.repeats, warmup=1)
        torch.save(run(), args.output)
    print(json.dumps(result))


def main() -> None:
    p = side_by_side_parser(__doc__.split("\n")[0], "checkout of xufangchn/GLF-CR")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "official_init.pth"
        # the official model's own random initialisation (weights shared by both workers)
        _install_official_stubs(Path(args.official_repo) / "codes")
        import net_CR_RDN

        torch.manual_seed(0)
        torch.save(net_CR_RDN.RDN_residual_CR(args.size).state_dict(), weights)
        results = {}
        for who in ("official", "ours"):
            out = Path(tmp) / f"{who}.pt"
            cmd = [
                sys.executable, __file__, "--worker", who, "--weights", str(weights),
                "--output", str(out), "--official-repo", args.official_repo,
                "--size", str(args.size), "--batch", str(args.batch),
                "--repeats", str(args.repeats), "--threads", str(args.threads),
            ]  # fmt: skip
            results[who] = run_worker(cmd, who)
        diff = max_abs_difference(Path(tmp) / "official.pt", Path(tmp) / "ours.pt")

    o, c = results["official"], results["ours"]
    shape = f"{args.batch}x13x{args.size}x{args.size}"
    print(f"GLF-CR full size, input {shape}, CPU, {args.threads} threads")
    print(f"{'':10}{'median s':>10}{'peak MiB':>10}")
    print(f"{'official':10}{o['median_s']:10.2f}{o['peak_extra_mib']:10.0f}")
    print(f"{'cloudfree':10}{c['median_s']:10.2f}{c['peak_extra_mib']:10.0f}")
    print(
        f"speed-up x{o['median_s'] / c['median_s']:.2f}, "
        f"memory x{o['peak_extra_mib'] / c['peak_extra_mib']:.2f} less; "
        f"max |official - ours| = {float(diff):.2e}"
    )


if __name__ == "__main__":
    main()
