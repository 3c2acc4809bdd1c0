"""UnCRtainTS and its U-TAE baseline on CPU: cloudfree against the official implementation, side
by side.

The official code is NOT part of this project. Fetch it yourself into a scratch directory, e.g.
``git clone https://github.com/PatrickTUM/UnCRtainTS /tmp/UnCRtainTS``, and pass
``--official-repo``. Its ``base_model.py`` imports ``fvcore`` for optional FLOP profiling only;
a stand-in module is installed at import time (profiling stays off). Nothing of the official
code is copied or modified.

``--network uncrtaints`` (default) is the README configuration (MGNLL, diagonal covariance,
``scale_by`` 10); ``--network utae_cr`` is the repository's U-TAE baseline as
``train_reconstruct.py`` configures ``--model utae`` (encoder and decoder widths
[64, 64, 64, 128] as the ``--encoder_widths`` help gives for U-TAE, ``out_conv`` [13], the L2
loss it forces, ``scale_by`` 1), against our ``utae_cr``.

Both get the same weights (the official network's random initialisation, loaded into ours
with our converter) and the same inputs (``[B, T, 13 + 2, H, W]`` in the official scaling,
dates as days). Measured, each in a fresh process one after the other:

* **forward**: eval mode, no gradients; official = ``BaseModel.set_input`` + ``forward`` (the
  network on the inputs multiplied by ``scale_by``), ours = ``run_model``;
* **training step**: train mode; official = ``BaseModel.optimize_parameters()`` (forward, the
  loss (MGNLL with the covariance matrices it builds, or L2), backward, Adam step,
  rescaling), ours = the model's forward, our loss (``mgnll`` with ``official_batch_logdet``,
  the same value, or ``l2``), backward and an Adam step (the core of a Lightning training
  step, without the loop around it).

It checks that the forward outputs agree and prints median latencies, peak extra memory and
the ratios official / cloudfree.

    python benchmarks/uncrtaints_vs_official.py --official-repo /tmp/UnCRtainTS --size 256
    python benchmarks/uncrtaints_vs_official.py --official-repo /tmp/UnCRtainTS --network utae_cr
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
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

#: per network: the official configuration's changes to the README one, our loss, scale_by
NETWORKS: dict[str, dict] = {
    "uncrtaints": {"config": {}, "loss": "mgnll", "label": "UnCRtainTS (README configuration)"},
    "utae_cr": {
        "config": {
            "model": "utae", "encoder_widths": [64, 64, 64, 128],
            "decoder_widths": [64, 64, 64, 128], "out_conv": [13], "loss": "l2", "scale_by": 1.0,
        },
        "loss": "l2",
        "label": "U-TAE baseline (train_reconstruct.py --model utae)",
    },
}  # fmt: skip


def _official_config(network: str) -> SimpleNamespace:
    """The configuration as the official scripts resolve it (parse_args plus
    train_reconstruct's adjustments: for UnCRtainTS out_conv 13 + 13 variances for MGNLL diag,
    for U-TAE the L2 loss)."""
    cfg = SimpleNamespace(
        model="uncrtaints", use_sar=True, encoder_widths=[128],
        decoder_widths=[128, 128, 128, 128, 128], out_conv=[26], mean_nonLinearity=True,
        var_nonLinearity="softplus", agg_mode="att_group", encoder_norm="group",
        decoder_norm="batch", n_head=16, d_model=256, d_k=4, pad_value=0,
        padding_mode="reflect", positional_encoding=True, covmode="diag", scale_by=10.0,
        separate_out=False, use_v=False, block_type="mbconv", pretrain=False, loss="MGNLL",
        chunk_size=None, lr=1e-3, gamma=1.0, device="cpu", profile=False, batch_size=1,
    )  # fmt: skip
    for key, value in NETWORKS[network]["config"].items():
        setattr(cfg, key, value)
    return cfg


def _official_base_model(repo: Path):  # noqa: ANN202
    fv = types.ModuleType("fvcore")
    fv_nn = types.ModuleType("fvcore.nn")
    fv_nn.FlopCountAnalysis = fv_nn.flop_count_table = None
    fv.nn = fv_nn
    sys.modules.update({"fvcore": fv, "fvcore.nn": fv_nn})
    sys.path.insert(0, str(repo / "model"))
    from src.backbones import base_model  # the official repository's own module

    return base_model.BaseModel


def _inputs(size: int, batch: int, dates: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "optical": torch.rand(batch, dates, 13, size, size, generator=g),
        "sar": torch.rand(batch, dates, 2, size, size, generator=g),
        "target": torch.rand(batch, 13, size, size, generator=g),
        "dates": torch.arange(dates, dtype=torch.float32)[None].repeat(batch, 1) * 12 + 300,
    }


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    x = _inputs(args.size, args.batch, args.dates)
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    train = args.mode == "train"
    if args.worker == "official":
        cfg = _official_config(args.network)
        cfg.batch_size = args.batch
        scale_by = cfg.scale_by
        model = _official_base_model(Path(args.official_repo))(cfg)
        model.netG.load_state_dict(state)
        batch = {
            "A": torch.cat([x["sar"], x["optical"]], dim=2),
            "B": x["target"][:, None],
            "dates": x["dates"],
            "masks": torch.zeros(args.batch, args.dates, args.size, args.size),
        }

        def step() -> torch.Tensor:
            model.set_input(batch)
            model.optimize_parameters()
            return model.fake_B

        def forward() -> torch.Tensor:
            model.set_input(batch)
            model.forward()
            return model.fake_B[:, 0, :13] / scale_by

        net = model.netG
    else:
        from cloudfree.losses import build_loss
        from cloudfree.models import create_model, get_model_info, run_model

        net = create_model(args.network)
        net.load_state_dict(get_model_info(args.network).official_converter(state))
        if NETWORKS[args.network]["loss"] == "mgnll":
            scale_by = _official_config(args.network).scale_by
            loss_fn = build_loss("mgnll", scale=scale_by, official_batch_logdet=True)
        else:
            loss_fn = build_loss(NETWORKS[args.network]["loss"])
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        kw = {"optical": x["optical"], "sar": x["sar"], "dates": x["dates"]}
        target = {"target": x["target"]}

        def step() -> torch.Tensor:
            out = run_model(net, **kw)
            optimizer.zero_grad()
            loss_fn(out, target).backward()
            optimizer.step()
            return out.pred.detach()

        def forward() -> torch.Tensor:
            return run_model(net, **kw).pred

    net.train(train)
    time_worker_mode(train, step, forward, args.repeats, args.output, conv_share=args.conv_share)


def main() -> None:
    p = side_by_side_parser(__doc__.split("\n")[0], "checkout of PatrickTUM/UnCRtainTS")
    p.add_argument("--network", choices=sorted(NETWORKS), default="uncrtaints")
    p.add_argument("--dates", type=int, default=3)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "official_init.pth"
        torch.manual_seed(0)
        base = _official_base_model(Path(args.official_repo))(_official_config(args.network))
        torch.save(base.netG.state_dict(), weights)
        results: dict[tuple[str, str], dict] = {}
        for mode in MODES:
            for who in ("official", "ours"):
                out = Path(tmp) / f"{who}.pt"
                extra = ("--network", args.network, "--dates", str(args.dates))
                cmd = worker_command(__file__, args, who, mode, weights, out, *extra)
                results[(mode, who)] = run_worker(cmd, f"{who} {mode}")
        diff = max_abs_difference(Path(tmp) / "official.pt", Path(tmp) / "ours.pt")

    shape = f"{args.batch}x{args.dates}x15x{args.size}x{args.size}"
    label = NETWORKS[args.network]["label"]
    print(f"{label}, input {shape}, CPU, {args.threads} threads")
    print_side_by_side(results)
    print(f"forward: max |official - ours| = {float(diff):.2e}")


if __name__ == "__main__":
    main()
