"""The built-in end-to-end demo on synthetic data (``cloudfree demo``).

>>> from cloudfree.demo import DemoSettings, run_demo                    # doctest: +SKIP
>>> result = run_demo(DemoSettings(out="demo_output"))                   # doctest: +SKIP
>>> result.report, result.summary["models"]["glf_cr"]["inside_clouds"]   # doctest: +SKIP

See :mod:`cloudfree.demo.pipeline` for the steps and the outputs. Needs the ``train`` extra
(Lightning) and matplotlib.
"""

from cloudfree.demo.pipeline import (
    DEMO_MODELS,
    MODEL_KWARGS,
    DemoResult,
    DemoSettings,
    compare_inside_clouds,
    run_demo,
    summary_lines,
)

__all__ = [
    "DEMO_MODELS",
    "MODEL_KWARGS",
    "DemoResult",
    "DemoSettings",
    "compare_inside_clouds",
    "run_demo",
    "summary_lines",
]
