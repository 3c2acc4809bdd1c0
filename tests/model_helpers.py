"""Small, fast instances of every registered model (one place: the common model tests and the
ONNX export tests build their networks from these settings)."""

from __future__ import annotations

import fnmatch

from torch import nn

from cloudfree.models import create_model

#: shell pattern -> kwargs for a small, fast instance of the model
SMALL_KWARGS: dict[str, dict] = {
    "glf_cr*": dict(width=16, num_blocks=2, layers_per_block=2, growth=8),
    "carf": dict(width=16, num_blocks=2, layers_per_block=2, growth=8),
    "dsen2cr*": dict(width=16, num_blocks=2),
    "standin_*": dict(width=4),
    "sar[_2]opt*": dict(ngf=4, num_downs=6),  # sar_opt_cgan, sar2opt
    "spa_gan": dict(),  # the official width 32 is fast enough
    "sgbaf*": dict(width=4, directed_width=8, basic_kernels=(3,), directed_depth=1)
    | dict(embed_dim=16, transformer_depth=1, num_heads=2, mlp_ratio=2.0),
    "uncrtaints*": dict(width=16, num_heads=4, d_model=32, decoder_blocks=2),
    "utae_cr": dict(encoder_widths=[8, 8, 16], decoder_widths=[8, 8, 16], n_head=4, d_model=16),
    "mmcanet*": dict(
        widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), nset=4, aspp_width=8, decoder_depth=1
    ),
    "mpir*": dict(
        mmcanet_kwargs=dict(
            widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), nset=4, aspp_width=8, decoder_depth=1
        ),
        orsnet_cabs=2,
    ),
    "ca_mtcr*": dict(embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0, stem_width=8)
    | dict(stem_blocks=1, sar_width=4, sar_channels=8, weight_width=8, ltae_heads=4)
    | dict(ltae_d_model=16, decoder_widths=(8, 8)),
}


def small_kwargs(name: str) -> dict:
    for pattern, kwargs in SMALL_KWARGS.items():
        if fnmatch.fnmatch(name, pattern):
            return dict(kwargs)
    raise KeyError(name)


def small_model(name: str, **overrides) -> nn.Module:
    return create_model(name, **{**small_kwargs(name), **overrides})
