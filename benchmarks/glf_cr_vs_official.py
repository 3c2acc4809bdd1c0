"""GLF-CR on CPU: cloudfree against the official implementation, side by side.

The official code is NOT part of this project. Fetch it yourself into a scratch directory, e.g.
``git clone https://github.com/xufangchn/GLF-CR /tmp/GLF-CR``, and pass ``--official-repo``.
Nothing of the official code is copied or modified; at import time, in the worker processes:

* its CUDA-only ``KernelConv2D`` is replaced by the repository's own pure-PyTorch fallback
  ``submodules.kernel2d_conv`` (the unfold-based CPU path), as the parity fixtures were produced;
* ``timm.models.layers`` (not installed) by a minimal stand-in: ``to_2tuple``,
  ``trunc_normal_`` = ``torch.nn.init.trunc_normal_``, and ``DropPath`` = cloudfree's
  :class:`~cloudfree.models.layers.drop_path.DropPath`, which does timm's arithmetic (a per-sample
  Bernoulli keep mask divided by the keep probability in training, the identity in eval mode),
  so stochastic depth (rate 0.2 in both models) costs the same on both sides;
* for the training step only, ``torch.nn.Module.cuda`` and ``torch.Tensor.cuda`` are made to
  return their object unchanged, because ``ModelCRNet`` moves its network and every batch with
  ``.cuda()``; everything therefore stays on the CPU.

Both models get the same weights (the official network's random initialisation under seed 0,
built at the size measured, since the official network is built per input size; converted
with our converter for ours) and the same random inputs in ``[0, 1]``. Measured, each in a fresh
process one after the other (median wall time and peak extra memory, ``_measure.py``):

* **forward** at ``--size`` (default 256): eval mode, no gradients; official =
  ``RDN_residual_CR(size)(cloudy, SAR)``, ours = ``run_model(net, optical=, sar=)``. The script
  checks that the two outputs agree (max |official - ours|).
* **training step** at ``--train-size`` (default 128, the official ``--crop_size``, which is
  also the size ``ModelCRNet`` builds its network for; the issue's target is a step at 128 px):
  train mode; official = ``ModelCRNet(opts)`` with the defaults of ``train_CR_net.py`` (Adam,
  lr 1e-4, ``nn.L1Loss``, one GPU id so no ``DataParallel``), per iteration exactly what its
  ``Generic_train_test.train`` loop calls: ``set_input`` + ``optimize_parameters()`` (forward,
  L1 loss, ``zero_grad``, backward, Adam step, ``loss.item()``). Ours = ``create_model("glf_cr")``
  with the converted weights, ``run_model``, our ``l1`` loss (the glf_cr recipe's; equal to
  ``nn.L1Loss`` with every pixel valid), ``zero_grad``, backward, ``torch.optim.Adam`` (lr 1e-4,
  the recipe's, betas and eps the defaults on both sides), ``loss.item()`` - the core of a
  Lightning training step without the loop around it. Left out on both sides: data loading,
  logging (the official loop's per-step ``get_current_scalars`` PSNR; our Lightning logging) and
  the per-epoch learning-rate scheduler step. Not identical by design: the official forward
  still computes the last block's SAR update that it then discards (ours does not build it; its
  weights get no gradient in the official model, so Adam skips them), and the random DropPath
  masks differ between the two processes (their cost does not).

    python benchmarks/glf_cr_vs_official.py --official-repo /tmp/GLF-CR --size 256 --train-size 128
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import (  # noqa: E402
    MODES,
    max_abs_difference,
    print_side_by_side,
    run_worker,
    side_by_side_parser,
    time_worker_mode,
    worker_command,
)

LR = 1e-4  # train_CR_net.py --lr default and the glf_cr recipe's


def _install_official_stubs(codes: Path) -> None:
    """Make the official ``codes/net_CR_RDN.py`` importable on CPU without timm or CUDA."""
    from torch import nn

    from cloudfree.models.layers.drop_path import DropPath

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


def _keep_cuda_calls_on_cpu() -> None:
    """``.cuda()`` on modules and tensors returns them unchanged (this worker process only)."""

    def same(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return self

    torch.nn.Module.cuda = same
    torch.Tensor.cuda = same


def _official_train_model(codes: Path, size: int):  # noqa: ANN202
    """``ModelCRNet`` with the ``train_CR_net.py`` defaults that it reads, built for ``size``."""
    _install_official_stubs(codes)
    _keep_cuda_calls_on_cpu()
    import model_CR_net  # the official repository's own module

    opts = SimpleNamespace(crop_size=size, gpu_ids="0", optimizer="Adam", lr=LR, lr_step=5)
    return model_CR_net.ModelCRNet(opts)


def _inputs(size: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cloudy optical ``[B, 13, S, S]``, SAR ``[B, 2, S, S]`` and cloud-free target."""
    g = torch.Generator().manual_seed(0)
    optical = torch.rand(batch, 13, size, size, generator=g)
    sar = torch.rand(batch, 2, size, size, generator=g)
    return optical, sar, torch.rand(batch, 13, size, size, generator=g)


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    train = args.mode == "train"
    size = args.train_size if train else args.size
    optical, sar, target = _inputs(size, args.batch)
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    codes = Path(args.official_repo) / "codes"
    step: Callable[[], float] | None = None  # the official worker builds only its mode's
    forward: Callable[[], torch.Tensor] | None = None
    if args.worker == "official":
        if train:
            model = _official_train_model(codes, size)
            net = model.net_G
            batch = {"cloudy_data": optical, "cloudfree_data": target, "SAR_data": sar}

            def step() -> float:
                model.set_input(batch)
                return model.optimize_parameters()
        else:
            _install_official_stubs(codes)
            import net_CR_RDN

            net = net_CR_RDN.RDN_residual_CR(size)

            def forward() -> torch.Tensor:
                return net(optical, sar)

        net.load_state_dict(state)  # in place: the optimizer keeps the same parameters
    else:
        from cloudfree.losses import build_loss
        from cloudfree.models import create_model, get_model_info, run_model

        net = create_model("glf_cr")
        net.load_state_dict(get_model_info("glf_cr").official_converter(state))
        loss_fn = build_loss("l1")
        optimizer = torch.optim.Adam(net.parameters(), lr=LR)
        labels = {"target": target}

        def step() -> float:
            out = run_model(net, optical=optical, sar=sar)
            loss = loss_fn(out, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.item()

        def forward() -> torch.Tensor:
            return run_model(net, optical=optical, sar=sar).pred

    net.train(train)
    time_worker_mode(train, step, forward, args.repeats, args.output, conv_share=args.conv_share)


def main() -> None:
    p = side_by_side_parser(__doc__.split("\n")[0], "checkout of xufangchn/GLF-CR")
    p.add_argument("--train-size", type=int, default=128, help="input size of the training step")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    sizes = {"forward": args.size, "train": args.train_size}
    with tempfile.TemporaryDirectory() as tmp:
        # the official network's own random initialisation, built per size (its attention
        # masks are tied to the size); the same seed gives the same parameters at every size
        # above 16 px (where the official layer does not shrink its window to the map)
        _install_official_stubs(Path(args.official_repo) / "codes")
        import net_CR_RDN

        weights = {}
        for size in sorted(set(sizes.values())):
            weights[size] = Path(tmp) / f"official_init_{size}.pth"
            torch.manual_seed(0)
            torch.save(net_CR_RDN.RDN_residual_CR(size).state_dict(), weights[size])
        results: dict[tuple[str, str], dict] = {}
        for mode in MODES:
            for who in ("official", "ours"):
                out = Path(tmp) / f"{who}.pt"
                extra = ("--train-size", str(args.train_size))
                cmd = worker_command(__file__, args, who, mode, weights[sizes[mode]], out, *extra)
                results[(mode, who)] = run_worker(cmd, f"{who} {mode}")
        diff = max_abs_difference(Path(tmp) / "official.pt", Path(tmp) / "ours.pt")

    print(f"GLF-CR full size, CPU, {args.threads} threads, batch {args.batch}")
    print_side_by_side(results, {m: f"{m} {s}x{s}" for m, s in sizes.items()})
    print(f"forward: max |official - ours| = {float(diff):.2e}")


if __name__ == "__main__":
    main()
