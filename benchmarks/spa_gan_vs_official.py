"""SpA-GAN on CPU: cloudfree against the official implementation, side by side.

The official code is NOT part of this project. Fetch it yourself into a scratch directory, e.g.
``git clone https://github.com/Penn000/SpA-GAN_for_cloud_removal /tmp/SpA-GAN``, and pass
``--official-repo``. Nothing of the official code is copied or modified: the workers import its
``models/gen/SPANet.py`` (``Generator``) and ``models/dis/dis.py`` (``Discriminator``) and read
its ``config.yml``. Its ``models`` folder has no ``__init__.py``; it is registered as the
package ``models`` by path, so that this folder's own ``models.py`` cannot shadow it. Both
official networks are built with ``gpu_ids=[]``, their CPU path (no ``data_parallel``).

**Weights.** The official initialisation (``torch.manual_seed(0)``, its ``manualSeed``, then
``Generator`` and ``Discriminator(in_ch, out_ch)`` in the order of ``train.py``), loaded into
ours with ``get_model_info("spa_gan").official_converter`` for the generator and, for the
discriminator (the project has no converter for it), with the key mapping of this script
(``c0_0 -> condition_in.0``, ``c0_1 -> image_in.0``, ``c1..c3 -> body``, ``c4 -> head``).

**Channels and inputs.** Official ``in_ch`` / ``out_ch`` are 3 (``config.yml``): 8-bit images
as OpenCV reads them, **BGR** / 255. Ours is RGB; the converters reverse the input channels of
the generator's head, the output channels of its tail and the input channels of both
discriminator branches, so the official networks get the channel-reversed tensors and compute
the same numbers. Inputs: random 8-bit levels / 255 for the cloudy image and the target,
``[B, 3, S, S]``, default ``--size 256`` (SEN12MS-CR patches; the official RICE images are
512) and ``--batch 1`` (the official ``batchsize`` is also 1).

Measured, each in a fresh process one after the other (median wall time and peak extra
memory, ``_measure.py``):

* **forward**: the generator only, eval mode, no gradients; official ``Generator(x_bgr)``
  (returns the last attention map and the image), ours ``run_model(net, optical=x)``. The
  script checks that the images and the last attention maps agree (max |official - ours|).
* **training step**: both networks in train mode (batch-norm batch statistics in the
  discriminator), one iteration of each side's training loop, data loading and logging left
  out on both sides.

  - official = one iteration of the ``train.py`` loop with the official modules (the loop is
    inline in ``train()``, there is no function to call; restated here with
    ``torch.nn.functional``): the generator forward; a discriminator update on the softplus
    GAN loss of the detached fake pair and the real pair (every iteration: ``minimax`` 1); a
    generator update on the GAN loss of the fake pair, ``lamb`` (100) times the L1 to the
    target and the MSE of the attention map to ``M``, with the discriminator not frozen. The
    official per-pixel normalisation ``sum / b / w / h`` is the mean here (its discriminator
    has one output channel). Both Adam with ``lr``, betas ``(beta1, 0.999)`` from
    ``config.yml`` (4e-4, 0.5) and ``weight_decay`` 1e-5 (hard-coded in ``train.py``), over all
    parameters. ``M = clip(sum_c (t - x), 0, 1)`` on the 8-bit values is built by its dataset
    (``data_manager.py``), so it is computed once, outside the step.
  - ours = the core of ``CloudRemovalModule._adversarial_step`` (``cloudfree.train.module``)
    without Lightning around it, with the values of the ``spa_gan`` recipe: ``out =
    run_model(net, optical=x)``; discriminator step ``gan.discriminator(D(target, x),
    D(out.pred.detach(), x))`` (``build_gan_loss("bce")``, our ``spa_gan`` discriminator
    from ``create_discriminator``), ``zero_grad``, backward, Adam step; generator step with
    the discriminator's parameters frozen (what ``toggled_optimizer(opt_g)`` does) on our
    ``spa_gan`` loss (100 L1 + attention MSE, ``M`` built inside the loss from ``target`` and
    ``optical``) plus ``weight * gan.generator(D(out.pred, x))``, ``zero_grad``, backward,
    Adam step. Both optimizers: the recipe's Adam (lr 4e-4, betas (0.5, 0.999), eps 1e-8,
    weight decay 1e-5; the discriminator's is the generator's), over the trainable parameters.
  - The script prints both sides' losses of the first step (same weights, same inputs):
    ``loss_d`` (ours doubled, see below) and ``loss_g``.

Not identical, by design of either side (the costs are part of what is compared):

* the official forward computes SAM's direction-attention map (``Attention``, about 1.8 G
  MACs at 256 px over the four SAM calls) and throws it away; ours does not compute it (its
  weights get no gradient on either side, so Adam skips them on both);
* in the official generator step the discriminator is not frozen, so the backward also
  computes its parameter gradients (never used: ``opt_dis.zero_grad()`` clears them at the next
  iteration); ours freezes it as Lightning's ``toggled_optimizer`` does. Lightning's toggle
  of the generator during the discriminator step is left out: it changes nothing computed
  there (the generated image is detached);
* ours builds ``M`` inside the loss (one subtraction, sum and clamp per step; the official
  dataset builds it in the data loader) and ``run_model`` checks the input and output shapes;
* ``mask_scale`` is 255 here (the official ``M`` on inputs / 255, as the recipe comment says
  for 8-bit inputs) instead of the recipe's 892.5 for reflectance: the same computation;
* cloudfree's ``bce`` discriminator loss is half the official one (every cloudfree GAN loss
  halves it): the first-step ``loss_d`` of ours is printed doubled. Under Adam the factor only
  changes the relative weight of the weight decay (and ``eps``), so the discriminator after
  its step, and hence ``loss_g``, differ very slightly between the two sides.

    python benchmarks/spa_gan_vs_official.py --official-repo /tmp/SpA-GAN --size 256
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

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

OFFICIAL_WEIGHT_DECAY = 1e-5  # hard-coded for both optimizers in the official train.py

#: official ``_Discriminator`` module -> ours (:class:`~cloudfree.models.SpAGANDiscriminator`)
_DIS_KEYS = {
    "c0_0.c": "condition_in.0",
    "c0_1.c": "image_in.0",
    "c1.c": "body.0",
    "c1.batchnorm": "body.1",
    "c2.c": "body.3",
    "c2.batchnorm": "body.4",
    "c3.c": "body.6",
    "c3.batchnorm": "body.7",
    "c4": "head",
}


def _official_config(repo: Path) -> dict[str, Any]:
    """The official ``config.yml`` (training settings and channel counts)."""
    cfg = yaml.safe_load((repo / "config.yml").read_text(encoding="utf-8"))
    if cfg["minimax"] != 1:
        sys.exit(f"official config.yml: minimax {cfg['minimax']} (this script assumes 1)")
    return cfg


def _official_networks(repo: Path, cfg: Mapping[str, Any]) -> tuple[torch.nn.Module, ...]:
    """The official ``Generator`` and ``Discriminator`` on the CPU (``gpu_ids=[]``)."""
    if "models" not in sys.modules:
        package = types.ModuleType("models")
        package.__path__ = [str(repo / "models")]
        sys.modules["models"] = package
    from models.dis.dis import Discriminator  # the official repository's own modules
    from models.gen.SPANet import Generator

    gen = Generator(gpu_ids=[])
    dis = Discriminator(in_ch=cfg["in_ch"], out_ch=cfg["out_ch"], gpu_ids=[])
    return gen, dis


def convert_official_discriminator(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official discriminator state dict -> ours, for RGB condition and image (the official
    network reads BGR: the input channels of both input branches are reversed)."""
    out = {}
    for key, value in state.items():
        module, _, leaf = key.removeprefix("dis.dis.").rpartition(".")
        if module in ("c0_0.c", "c0_1.c") and leaf == "weight":
            value = value.flip(1)  # BGR -> RGB inputs
        out[f"{_DIS_KEYS[module]}.{leaf}"] = value
    return out


def _inputs(size: int, batch: int) -> dict[str, torch.Tensor]:
    """RGB cloudy image and target: random 8-bit levels / 255, ``[B, 3, S, S]``."""
    g = torch.Generator().manual_seed(0)
    shape = (batch, 3, size, size)
    return {
        "optical": torch.randint(0, 256, shape, generator=g).float() / 255,
        "target": torch.randint(0, 256, shape, generator=g).float() / 255,
    }


def _official_worker(args: argparse.Namespace, x: dict[str, torch.Tensor], state: dict) -> tuple:
    import torch.nn.functional as F
    from torch import optim

    cfg = _official_config(Path(args.official_repo))
    gen, dis = _official_networks(Path(args.official_repo), cfg)
    gen.load_state_dict(state["gen"])
    dis.load_state_dict(state["dis"])
    real_a, real_b = x["optical"].flip(1), x["target"].flip(1)  # BGR, as OpenCV reads
    # the official dataset's M: on the 8-bit values, before they are divided by 255
    levels_a, levels_b = (real_a * 255).round(), (real_b * 255).round()
    mask = (levels_b - levels_a).sum(1).clamp(0, 1)
    betas = (cfg["beta1"], 0.999)
    decay = OFFICIAL_WEIGHT_DECAY
    opt_gen = optim.Adam(gen.parameters(), lr=cfg["lr"], betas=betas, weight_decay=decay)
    opt_dis = optim.Adam(dis.parameters(), lr=cfg["lr"], betas=betas, weight_decay=decay)
    first: list[torch.Tensor] = []

    def pair(image: torch.Tensor) -> torch.Tensor:  # the official conditional input
        return torch.cat((real_a, image), 1)

    def step() -> None:
        attention, fake = gen(real_a)
        opt_dis.zero_grad()
        d_loss = F.softplus(dis(pair(fake).detach())).mean() + F.softplus(-dis(pair(real_b))).mean()
        d_loss.backward()
        opt_dis.step()  # every iteration (minimax 1)
        opt_gen.zero_grad()  # the discriminator stays trainable, as officially
        g_loss = (
            F.softplus(-dis(pair(fake))).mean()
            + cfg["lamb"] * F.l1_loss(fake, real_b)
            + F.mse_loss(attention[:, 0], mask)
        )
        g_loss.backward()
        opt_gen.step()
        if not first:
            first.append(torch.stack([d_loss.detach(), g_loss.detach()]))

    def forward() -> torch.Tensor:
        att, fake_b = gen(real_a)
        return torch.cat([fake_b.flip(1), att], dim=1)  # back to RGB

    return (gen, dis), step, forward, first


def _our_worker(args: argparse.Namespace, x: dict[str, torch.Tensor], state: dict) -> tuple:
    from cloudfree.losses import build_gan_loss, build_loss
    from cloudfree.models import create_discriminator, create_model, get_model_info, run_model
    from cloudfree.train.config import load_recipe

    recipe = load_recipe("spa_gan")
    adv, o = recipe["adversarial"], recipe["optimizer"]
    net = create_model("spa_gan", **recipe["model"]["kwargs"])
    net.load_state_dict(get_model_info("spa_gan").official_converter(state["gen"]))
    dis = create_discriminator(adv["discriminator"], in_channels=6, **adv["discriminator_kwargs"])
    dis.load_state_dict(convert_official_discriminator(state["dis"]))
    # the recipe's loss with mask_scale 255: the official M on 8-bit inputs / 255
    loss_fn = build_loss(recipe["loss"]["name"], **{**recipe["loss"]["kwargs"], "mask_scale": 255})
    gan = build_gan_loss(adv["gan_loss"])

    def adam(module: torch.nn.Module) -> torch.optim.Adam:
        params = [p for p in module.parameters() if p.requires_grad]
        return torch.optim.Adam(
            params,
            lr=o["lr"],
            betas=tuple(o["betas"]),
            eps=o["eps"],
            weight_decay=o["weight_decay"],
        )

    opt_g, opt_d = adam(net), adam(dis)  # adversarial.optimizer null: the generator's
    optical, real = x["optical"], x["target"]
    first: list[torch.Tensor] = []

    def step() -> None:
        out = run_model(net, optical=optical)
        fake = out.pred
        loss_d = gan.discriminator(dis(real, optical), dis(fake.detach(), optical))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        dis.requires_grad_(False)  # toggled_optimizer(opt_g)
        loss = loss_fn(out, x) + adv["weight"] * gan.generator(dis(fake, optical))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        dis.requires_grad_(True)
        if not first:  # the official convention: bce discriminator loss not halved
            first.append(torch.stack([2 * loss_d.detach(), loss.detach()]))

    def forward() -> torch.Tensor:
        out = run_model(net, optical=optical)
        return torch.cat([out.pred, out.extras["attention"]], dim=1)

    return (net, dis), step, forward, first


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    x = _inputs(args.size, args.batch)
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    make = _official_worker if args.worker == "official" else _our_worker
    nets, step, forward, first = make(args, x, state)
    train = args.mode == "train"
    for net in nets:
        net.train(train)
    time_worker_mode(
        train, step, forward, args.repeats, args.output, lambda: first[0], args.conv_share
    )


def main() -> None:
    p = side_by_side_parser(__doc__.split("\n")[0], "checkout of Penn000/SpA-GAN_for_cloud_removal")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    repo = Path(args.official_repo)
    cfg = _official_config(repo)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "official_init.pth"
        torch.manual_seed(cfg["manualSeed"])  # as train.py: seed, then Generator, Discriminator
        gen, dis = _official_networks(repo, cfg)
        torch.save({"gen": gen.state_dict(), "dis": dis.state_dict()}, weights)
        results: dict[tuple[str, str], dict] = {}
        files: dict[tuple[str, str], Path] = {}
        for mode in MODES:
            for who in ("official", "ours"):
                files[(mode, who)] = Path(tmp) / f"{who}_{mode}.pt"
                cmd = worker_command(__file__, args, who, mode, weights, files[(mode, who)])
                results[(mode, who)] = run_worker(cmd, f"{who} {mode}")
        diff = max_abs_difference(files[("forward", "official")], files[("forward", "ours")])
        losses = {who: torch.load(files[("train", who)]).tolist() for who in ("official", "ours")}

    shape = f"{args.batch}x3x{args.size}x{args.size}"
    print(
        f"SpA-GAN (official config.yml / spa_gan recipe), input {shape} RGB, CPU, "
        f"{args.threads} threads (official batchsize {cfg['batchsize']})"
    )
    print_side_by_side(results)
    print(f"forward: max |official - ours| = {float(diff):.2e} (image and last attention map)")
    (d_o, g_o), (d_c, g_c) = losses["official"], losses["ours"]
    print(f"train, first step: loss_d official {d_o:.6f} / ours x2 {d_c:.6f}")
    print(f"train, first step: loss_g official {g_o:.6f} / ours {g_c:.6f}")


if __name__ == "__main__":
    main()
