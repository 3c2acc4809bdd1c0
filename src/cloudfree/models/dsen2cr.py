"""DSen2-CR: a deep residual network for SAR-optical cloud removal.

Paper: A. Meraner, P. Ebel, X. X. Zhu, M. Schmitt, "Cloud removal in Sentinel-2 imagery using a
deep residual neural network and SAR-optical data fusion", ISPRS Journal of Photogrammetry and
Remote Sensing 166 (2020) 333-346. Official code: ``ameraner/dsen2-cr`` (Keras model
``Code/dsen2cr_network.py`` and the PyTorch port ``Code/dsen2cr_pytorch_model.py``, class
``ResnetStackedArchitecture``). This module is an independent re-implementation; it is checked
against outputs of the official PyTorch port (``parity/dsen2cr``).

Architecture (SPEC section 5.6)::

    x = cat([optical, sar], dim=1)              # optical channels first, then VV, VH
    x = relu(head(x))                           # Conv3x3(in_optical + in_sar -> F)
    for each of the B blocks:
        x = x + res_scale * conv2(relu(conv1(x)))   # Conv3x3(F -> F), twice
    out = optical + tail(x)                     # Conv3x3(F -> in_optical), long skip

Decisions and facts, each checked against the official code:

* **Width and depth.** ``width=256`` (F) and ``num_blocks=16`` (B): the values of the paper, of
  the Keras training script (``dsen2cr_main.py`` passes ``num_layers=16, feature_size=256``; the
  Keras function's own default of 32 blocks is not used) and of the PyTorch port. That gives
  18,947,341 parameters for 13 optical and 2 SAR channels.
* **Input order.** Optical channels first, SAR after, as both the Keras model
  (``Concatenate([input_opt, input_sar])``) and the PyTorch port (``cat([cloudy, sar])``,
  long skip ``input[:, :-2]``) do.
* **Convolutions.** Every convolution is 3x3, stride 1, with a bias and zero padding 1 (Keras
  ``padding='same'``; the port's ``padding=1``). There is no normalisation layer and no dropout
  (the port's dropout option is off).
* **Residual scaling.** The residual branch is multiplied by ``res_scale`` (0.1) *after* the
  second convolution and before the identity is added, as in both official versions.
* **Long skip.** The network predicts a correction that is added to the cloudy optical input;
  the output is not clipped or otherwise post-processed. The Keras model additionally
  concatenates ``[pred, cloudy, zeros]`` to its output when ``use_cloud_mask`` is set; that is a
  trick to hand the cloudy input to the CARL loss, not part of the network, and is left out
  here (the loss belongs with the training code).
* **Initialisation.** He-uniform weights and zero biases. The port's
  ``init_weights('kaiming-uniform')`` calls ``kaiming_uniform_(mode='fan_in',
  nonlinearity='relu')``, i.e. U(-b, b) with ``b = sqrt(2) * sqrt(3 / fan_in) = sqrt(6 /
  fan_in)``, ``fan_in = in_channels * 3 * 3``; Keras ``he_uniform`` is ``VarianceScaling(2.0,
  'fan_in', 'uniform')`` with the same bound, and Keras biases default to zeros. The two official
  versions therefore agree, and :meth:`DSen2CR.reset_parameters` does the same (PyTorch's own
  ``Conv2d`` default, ``a=sqrt(5)`` with a uniform bias, is *not* used).
* **Scaling.** Inputs use the ``dsen2cr`` protocol (SPEC section 1): optical DN clipped to
  [0, 10000] and divided by 2000 (range [0, 5]); SAR VV in [-25, 0] and VH in [-32.5, 0] dB
  rescaled to [0, 2]. The output is in the optical input's units.
* **Resolution.** Nothing depends on the input size; any ``H, W`` (odd included) works.
* **Without SAR.** ``in_sar=0`` builds the paper's optical-only ablation (Keras
  ``include_sar_input=False``: the head sees only the optical bands); it is registered as
  ``dsen2cr_no_sar``, whose ``forward`` accepts and ignores ``sar``.

Official checkpoints in the PyTorch port's layout (a bare state dict with ``model.N.*`` keys, see
:func:`convert_official_dsen2cr`) are converted to this module's names: ``head``,
``blocks.<i>.conv1``, ``blocks.<i>.conv2`` and ``tail``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cloudfree.errors import ConfigError
from cloudfree.models._registry import register_model
from cloudfree.models.api import CloudRemovalModel, InputSpec, ModelSpec

__all__ = [
    "DSen2CR",
    "DSen2CRBlock",
    "convert_official_dsen2cr",
    "dsen2cr",
    "dsen2cr_no_sar",
]

PAPER = "Meraner et al., ISPRS J. 2020 (DSen2-CR)"
OFFICIAL_REPO = "ameraner/dsen2-cr"


def _he_uniform_(conv: nn.Conv2d) -> None:
    """He-uniform weights (bound ``sqrt(6 / fan_in)``) and zero bias, as the official code."""
    nn.init.kaiming_uniform_(conv.weight, mode="fan_in", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class DSen2CRBlock(nn.Module):
    """Residual block ``x + res_scale * conv2(relu(conv1(x)))`` (3x3 convs with bias)."""

    def __init__(self, width: int, res_scale: float = 0.1) -> None:
        super().__init__()
        self.res_scale = float(res_scale)
        self.conv1 = nn.Conv2d(width, width, kernel_size=3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, padding=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))

    def extra_repr(self) -> str:
        return f"res_scale={self.res_scale}"


class DSen2CR(CloudRemovalModel):
    """DSen2-CR (Meraner et al., ISPRS J. 2020): residual SAR-optical cloud removal network.

    See the module docstring for the architecture and every decision taken.

    Args:
        in_optical: optical channels (13 for all Sentinel-2 L1C bands); also the output channels.
        in_sar: SAR channels (2: VV, VH); 0 builds the optical-only variant.
        width: feature channels F of every hidden layer (paper: 256).
        num_blocks: number B of residual blocks (paper: 16).
        res_scale: factor on each block's residual branch (paper: 0.1).

    Inputs are ``optical [B, in_optical, H, W]`` and ``sar [B, in_sar, H, W]`` in the ``dsen2cr``
    scaling; the output is ``[B, in_optical, H, W]`` in the optical input's scaling.
    """

    def __init__(
        self,
        in_optical: int = 13,
        in_sar: int = 2,
        width: int = 256,
        num_blocks: int = 16,
        res_scale: float = 0.1,
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("in_optical", in_optical, 1),
            ("in_sar", in_sar, 0),
            ("width", width, 1),
            ("num_blocks", num_blocks, 0),
        ):
            self.check_int(name, value, minimum)
        if not math.isfinite(float(res_scale)):
            raise ConfigError(f"DSen2CR: res_scale must be finite, got {res_scale!r}")
        self.in_optical = in_optical
        self.in_sar = in_sar
        self.width = width
        self.num_blocks = num_blocks
        self.res_scale = float(res_scale)

        self.head = nn.Conv2d(in_optical + in_sar, width, kernel_size=3, padding=1, bias=True)
        self.blocks = nn.ModuleList(DSen2CRBlock(width, res_scale) for _ in range(num_blocks))
        self.tail = nn.Conv2d(width, in_optical, kernel_size=3, padding=1, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-uniform weights, zero biases (official ``init_weights('kaiming-uniform')``)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                _he_uniform_(module)

    def forward(self, optical: Tensor, sar: Tensor | None = None) -> Tensor:
        """Cloud-free estimate ``optical + tail(body(head(cat[optical, sar])))``.

        ``sar`` is required when ``in_sar > 0`` and ignored (may be None) when ``in_sar == 0``.
        """
        self.check_image("optical", optical, self.in_optical)
        if self.in_sar > 0:
            if sar is None:
                raise ConfigError("DSen2CR: this model needs a SAR input (in_sar > 0)")
            self.check_image("sar", sar, self.in_sar, like=optical)
            x = torch.cat([optical, sar], dim=1)
        else:
            x = optical
        x = F.relu(self.head(x))
        for block in self.blocks:
            x = block(x)
        return optical + self.tail(x)


_OFFICIAL_KEY = re.compile(r"^model\.(\d+)\.(?:conv_block\.(\d+)\.)?(weight|bias)$")
_OFFICIAL_BLOCK_CONV = {"0": "conv1", "2": "conv2"}


def convert_official_dsen2cr(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert the official PyTorch port's state dict to :class:`DSen2CR` names.

    The port (``ResnetStackedArchitecture``) keeps one ``nn.Sequential`` called ``model``:
    index 0 is the head conv, 1 its ReLU, ``2 .. B+1`` the residual blocks (each a
    ``conv_block`` Sequential of conv 0, ReLU 1, conv 2) and ``B+2`` the tail conv. The mapping
    is ``model.0.* -> head.*``, ``model.{i}.conv_block.{0,2}.* -> blocks.{i-2}.conv{1,2}.*`` and
    ``model.{B+2}.* -> tail.*``. B is read from the keys, so any width and depth converts; build
    the model with the matching ``width``/``num_blocks`` (and ``in_sar=0`` for a 13-channel head).

    Raises:
        ConfigError: for a key outside that layout, a block key at or after the tail's index, a
            gap in the block numbering, or a state dict without head or tail.
    """
    parsed: list[tuple[str, int, str | None, str]] = []
    for key in state_dict:
        match = _OFFICIAL_KEY.match(key)
        index = int(match.group(1)) if match is not None else -1
        conv = match.group(2) if match is not None else None
        # index 1 is the head's ReLU; a block ('conv_block') can only start at index 2, and
        # inside a block only the convs 0 and 2 have parameters (1 is the ReLU).
        if (
            match is None
            or index == 1
            or (conv is not None and (index < 2 or conv not in _OFFICIAL_BLOCK_CONV))
        ):
            raise ConfigError(f"convert_official_dsen2cr: unrecognised key {key!r}")
        parsed.append((key, index, conv, match.group(3)))

    plain = {index for _, index, conv, _ in parsed if conv is None}
    blocks = {index for _, index, conv, _ in parsed if conv is not None}
    if 0 not in plain or len(plain) != 2:
        raise ConfigError(
            "convert_official_dsen2cr: expected exactly a head 'model.0.*' and one tail conv "
            f"outside the residual blocks, found indices {sorted(plain)}"
        )
    tail_index = max(plain)  # >= 2, since index 1 was rejected above
    if blocks != set(range(2, tail_index)):
        raise ConfigError(
            "convert_official_dsen2cr: residual blocks must be 'model.2' .. "
            f"'model.{tail_index - 1}' (tail at 'model.{tail_index}'), found {sorted(blocks)}"
        )

    out: dict[str, Tensor] = {}
    for key, index, conv, param in parsed:
        if index == 0:
            new = f"head.{param}"
        elif index == tail_index:
            new = f"tail.{param}"
        else:
            new = f"blocks.{index - 2}.{_OFFICIAL_BLOCK_CONV[conv]}.{param}"  # type: ignore[index]
        out[new] = state_dict[key]
    return out


def dsen2cr_spec(kwargs: Mapping[str, Any]) -> ModelSpec:
    """The contract of a :class:`DSen2CR` built with ``kwargs``: mono-temporal, ``in_optical``
    channels, SAR when ``in_sar > 0``, no padding (all convolutions keep the size)."""
    return ModelSpec(
        InputSpec(
            optical_channels=kwargs["in_optical"],
            sar_channels=kwargs["in_sar"],
            needs_sar=kwargs["in_sar"] > 0,
        )
    )


@register_model(
    "dsen2cr",
    paper=PAPER,
    protocol="dsen2cr",
    bands="all",
    description="DSen2-CR: residual network on concatenated S2 + S1 (F=256, B=16), long skip",
    official_converter=convert_official_dsen2cr,
    official_repo=OFFICIAL_REPO,
    spec=dsen2cr_spec,
    model_class=DSen2CR,
    default_recipe="dsen2cr",
)
def dsen2cr(**kwargs: object) -> DSen2CR:
    """DSen2-CR with SAR (the paper's main model); kwargs go to :class:`DSen2CR`."""
    return DSen2CR(**kwargs)  # type: ignore[arg-type]


@register_model(
    "dsen2cr_no_sar",
    paper=PAPER,
    protocol="dsen2cr",
    bands="all",
    description="DSen2-CR without SAR (the paper's optical-only ablation); sar is ignored",
    default_kwargs={"in_sar": 0},
    official_repo=OFFICIAL_REPO,
    spec=dsen2cr_spec,
    model_class=DSen2CR,
    default_recipe="dsen2cr",
)
def dsen2cr_no_sar(**kwargs: object) -> DSen2CR:
    """DSen2-CR without the SAR input (``in_sar=0``); kwargs go to :class:`DSen2CR`."""
    return DSen2CR(**kwargs)  # type: ignore[arg-type]
