"""Click options shared by several commands: the Sentinel-2 input options (predict, cloudmask)
and the inference options (predict, evaluate); one declaration each, so the flags mean the same
everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["inference_options", "optical_input_options"]

_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

_OPTIONS: tuple[_Decorator, ...] = (
    click.option(
        "--bands",
        "file_bands",
        help="Names of the optical file's bands in file order, when neither the band "
        "descriptions nor the 13-band L1C order give them, e.g. B04,B03,B02 or "
        "B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B11,B12.",
    ),
    click.option(
        "--fill-band",
        "fill_bands",
        multiple=True,
        metavar="BAND[=DN]",
        help="Give a band the file lacks a constant value (repeatable): --fill-band B10 uses "
        "the documented clear-sky 20 DN (the L2A adapter for 13-band models; "
        "docs/sentinel2_inputs.md).",
    ),
    click.option(
        "--pb04-offset",
        is_flag=True,
        default=False,
        help="Remove the +1000 DN offset of processing baseline 04.00 products "
        "(after 25 Jan 2022).",
    ),
    click.option(
        "--optical-scale",
        type=click.Choice(["dn", "reflectance"]),
        default="dn",
        show_default=True,
        help="Scale of the optical values: dn (L1C DN, reflectance x 10000) or reflectance "
        "(0..1 floats, multiplied by 10000).",
    ),
)


def optical_input_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--bands``, ``--fill-band``, ``--pb04-offset`` and ``--optical-scale``."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


_INFERENCE: tuple[_Decorator, ...] = (
    click.option(
        "--precision",
        type=click.Choice(["32", "bf16", "16"]),
        default="32",
        show_default=True,
        help="Forward pass in float32, or under autocast in bfloat16 or float16 (also on CPU; "
        "outputs in float32). Accuracy cost measured in docs/performance.md.",
    ),
    click.option(
        "--compile",
        "compile_model",
        is_flag=True,
        help="Compile the network with torch.compile (the first batch of each shape compiles; "
        "needs a C++ compiler on CPU).",
    ),
)


def inference_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--precision`` and ``--compile``
    (:class:`cloudfree.models.inference.InferenceOptions`)."""
    for option in reversed(_INFERENCE):
        func = option(func)
    return func
