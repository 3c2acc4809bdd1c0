"""Parameters, multiply-accumulates, forward latency, peak memory and achieved GFLOP/s of every
registered model, for torch eager, torch.compile and onnxruntime side by side, in one run.

Each (model, size, runtime) runs in a fresh process (so one configuration's allocator cache
or compiled code cannot help another), batch 1, eval mode, ``torch.no_grad()``, the given
number of threads, through ``run_model`` with inputs built from the model's spec (the
contract's checks included; temporal models get ``--dates`` dates):

* **eager**: the network as it is;
* **bf16**: eager under bfloat16 autocast (what ``--precision bf16`` runs; its accuracy cost:
  ``benchmarks/precision_accuracy.py``);
* **compile**: :class:`cloudfree.models.inference.InferenceModel` with ``compile=True`` (what
  ``--compile`` runs); the first call, which compiles, is timed apart (``compile s``);
* **onnxruntime**: the network exported by :func:`cloudfree.models.onnx_export.export_onnx`
  (once per model, at the first size; the file has dynamic sizes) and run through
  :class:`cloudfree.models.onnx_runtime.OnnxRuntimeModel` (what ``--runtime onnxruntime``
  runs). A network that cannot be exported gets the reason instead of a time.

**MACs** are counted by torch's flop counter (``FlopCounterMode`` total / 2, the convention
of paper 002; :func:`cloudfree.models.complexity.count_macs`), and **GFLOP/s** is
``2 x MACs / latency``. The **convolution peak** is measured in the same run, first, in its
own process: the best GFLOP/s of plain 3x3 convolutions (64 channels at 256 px, 128 at 128 px,
256 at 64 px, batch 1) under the same threads; ``% peak`` is a model's GFLOP/s over it.

    python benchmarks/models.py                                  # everything, 128 and 256 px
    python benchmarks/models.py --models glf_cr,dsen2cr --sizes 256 --runtimes eager,compile
    python benchmarks/models.py --markdown table.md              # also write a Markdown table

A worker that runs longer than ``--timeout`` seconds is stopped and reported as such.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measure  # noqa: E402

RUNTIMES = ("eager", "bf16", "compile", "onnxruntime")
#: (channels, size) of the convolutions whose best throughput is the peak
PEAK_CONVS = ((64, 256), (128, 128), (256, 64))


def conv_peak(threads: int, repeats: int, device: str = "cpu") -> dict:
    """Best GFLOP/s of plain 3x3 convolutions (batch 1) with ``threads`` threads."""
    torch.set_num_threads(threads)
    best = 0.0
    for channels, size in PEAK_CONVS:
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval().to(device)
        x = torch.rand(1, channels, size, size, device=device)
        with torch.no_grad():
            r = measure(lambda: conv(x), repeats=max(5, repeats), warmup=2, device=device)  # noqa: B023
        flops = 2 * channels * channels * 9 * size * size
        best = max(best, flops / r["min_s"] / 1e9)
    return {"peak_gflops": best}


def worker(name: str, size: int, runtime: str, args: argparse.Namespace) -> dict:
    """One (model, size, runtime) measurement (see the module docstring)."""
    from cloudfree.models import create_model, run_model
    from cloudfree.models.complexity import count_macs, count_parameters, spec_batch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(name).eval().to(args.device)
    batch = spec_batch(model, size, dates=args.dates, device=args.device)
    result: dict = {}
    net: torch.nn.Module = model
    if runtime == "bf16":
        from cloudfree.models.inference import InferenceOptions, for_inference

        net = for_inference(model, InferenceOptions(precision="bf16"))
    elif runtime == "compile":
        from cloudfree.models.inference import InferenceOptions, for_inference

        net = for_inference(model, InferenceOptions(compile=True))
        t = time.perf_counter()
        with torch.no_grad():
            run_model(net, batch)
        result["compile_s"] = time.perf_counter() - t
    elif runtime == "onnxruntime":
        net = _onnx_network(model, name, Path(args.onnx_dir), args.device)
    with torch.no_grad():
        timing = measure(
            lambda: run_model(net, batch), repeats=args.repeats, warmup=1, device=args.device
        )
        result.update(timing)
    if runtime == "eager":  # after the timing (the counter slows the call down)
        result["params"] = count_parameters(model)
        result["gmacs"] = count_macs(model, batch) / 1e9
    return result


def _onnx_network(model: torch.nn.Module, name: str, folder: Path, device: str) -> torch.nn.Module:
    """The network exported to ``folder/<name>.onnx`` (exported here when absent) and opened
    with onnxruntime; exits with the reason when it cannot be exported."""
    from cloudfree.errors import ConfigError
    from cloudfree.models import get_model_info
    from cloudfree.models.onnx_export import export_onnx
    from cloudfree.models.onnx_runtime import load_onnx

    path = folder / f"{name}.onnx"
    failed = folder / f"{name}.failed"
    if failed.exists():
        sys.exit(f"not exportable: {failed.read_text()}")
    if not path.exists():
        info = get_model_info(name)
        meta = {"protocol": info.protocol, "bands": info.bands, "config": {"name": name}}
        try:
            export_onnx(model, path, name=name, metadata=meta)
        except ConfigError as exc:
            failed.write_text(str(exc))
            sys.exit(f"not exportable: {exc}")
    return load_onnx(path, device=device).model


def _row(name: str, size: int, runtime: str, r: dict, peak: float, macs: float | None) -> dict:
    row = {"model": name, "size": size, "runtime": runtime, **r}
    if "median_s" in r and macs:
        row["gflops"] = 2 * macs / r["median_s"] / 1e9
        row["peak_fraction"] = row["gflops"] / peak
    return row


def _run(cmd: list[str], timeout: float) -> tuple[dict | None, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"stopped after {timeout:.0f} s"
    if proc.returncode != 0:
        lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
        return None, (lines[-1] if lines else f"exit {proc.returncode}")[:160]
    return json.loads(proc.stdout.strip().splitlines()[-1]), ""


def _markdown(rows: list[dict], header: str) -> str:
    """The rows as one Markdown table, a line per (model, size), the runtimes side by side."""
    by_key: dict[tuple[str, int], dict[str, dict]] = {}
    for r in rows:
        by_key.setdefault((r["model"], r["size"]), {})[r["runtime"]] = r

    def get(r: dict | None, key: str, fmt: str, scale: int = 1) -> str:
        v = None if r is None else r.get(key)
        return "" if v is None else format(v * scale if scale != 1 else v, fmt)

    reasons: dict[str, int] = {}

    def seconds(r: dict | None) -> str:
        if r is None:
            return "-"
        if "error" in r:
            reason = r["error"].removeprefix("not exportable: ")
            reason = reason.removeprefix(f"{r['model']}: ").removeprefix(f"{r['model']} ")
            return f"no [{reasons.setdefault(reason, len(reasons) + 1)}]"
        return f"{r['median_s']:.3f}"

    lines = [
        header,
        "",
        "| model | px | params | GMACs | eager s | GFLOP/s | % of peak | peak MiB | bf16 s "
        "| compile s | compile GFLOP/s | first call s | onnxruntime s | ort GFLOP/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, size), runs in by_key.items():
        e, b, c, o = (runs.get(k) for k in RUNTIMES)
        cells = [
            name, str(size), get(e, "params", ","), get(e, "gmacs", ".2f"), seconds(e),
            get(e, "gflops", ".1f"), get(e, "peak_fraction", ".0f", 100),
            get(e, "peak_extra_mib", ".0f"), seconds(b), seconds(c), get(c, "gflops", ".1f"),
            get(c, "compile_s", ".0f"), seconds(o), get(o, "gflops", ".1f"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if reasons:
        lines += ["", "Not measured:", ""]
        lines += [f"- [{k}] {reason}" for reason, k in reasons.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="", help="comma-separated names (default: all)")
    p.add_argument("--sizes", default="128,256")
    p.add_argument("--runtimes", default=",".join(RUNTIMES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dates", type=int, default=3, help="dates T of temporal models (3)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (benchmarks/gpu_check.sh)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per worker (900)")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    p.add_argument(
        "--json",
        type=Path,
        help="also write every row as JSON here (rewritten after each row, so a stopped run "
        "keeps what it measured; ``complete`` says whether it finished)",
    )
    p.add_argument(
        "--render",
        type=Path,
        help="measure nothing: write the --markdown table of the rows of this --json file",
    )
    p.add_argument("--worker", nargs=3, metavar=("NAME", "SIZE", "RUNTIME"), help=argparse.SUPPRESS)
    p.add_argument("--peak-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--onnx-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.render:
        if not args.markdown:
            sys.exit("--render needs --markdown (the table to write)")
        saved = json.loads(args.render.read_text())
        args.markdown.write_text(_markdown(saved["rows"], saved["header"]))
        return
    if args.peak_worker:
        print(json.dumps(conv_peak(args.threads, args.repeats, args.device)))
        return
    if args.worker:
        name, size, runtime = args.worker
        print(json.dumps(worker(name, int(size), runtime, args)))
        return

    from cloudfree.models import list_models

    names = [n for n in args.models.split(",") if n] or list_models()
    sizes = [int(s) for s in args.sizes.split(",")]
    runtimes = [r for r in args.runtimes.split(",") if r]
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown:
        sys.exit(f"unknown runtime(s) {unknown}; choose from {', '.join(RUNTIMES)}")
    common = ["--repeats", str(args.repeats), "--threads", str(args.threads),
              "--dates", str(args.dates), "--device", args.device]  # fmt: skip
    peak_r, err = _run([sys.executable, __file__, "--peak-worker", *common], args.timeout)
    if peak_r is None:
        sys.exit(f"convolution peak failed: {err}")
    peak = float(peak_r["peak_gflops"])
    print(f"3x3 convolution peak before the models: {peak:.1f} GFLOP/s", flush=True)
    print(f"{'model':18}{'px':>5}{'runtime':>12}{'params':>12}{'GMACs':>9}{'median s':>10}"
          f"{'GFLOP/s':>9}{'% peak':>8}{'MiB':>7}  note")  # fmt: skip
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="cloudfree-bench-onnx-") as onnx_dir:
        for name in names:
            macs: dict[int, float] = {}
            for size in sizes:
                for runtime in runtimes:
                    cmd = [sys.executable, __file__, "--worker", name, str(size), runtime,
                           *common, "--onnx-dir", onnx_dir]  # fmt: skip
                    r, err = _run(cmd, args.timeout)
                    if r is None:
                        row = {"model": name, "size": size, "runtime": runtime, "error": err}
                    else:
                        if "gmacs" in r:
                            macs[size] = r["gmacs"] * 1e9
                        row = _row(name, size, runtime, r, peak, macs.get(size))
                    rows.append(row)
                    _print(row)
                    if args.json:
                        partial = f"stopped run (rows so far); convolution peak {peak:.1f} GFLOP/s"
                        _write_json(args.json, partial, peak, rows, complete=False)
    after, _ = _run([sys.executable, __file__, "--peak-worker", *common], args.timeout)
    peak_after = float(after["peak_gflops"]) if after else float("nan")
    header = (
        f"{_device_name(args.device)}, {args.threads} threads, torch {torch.__version__}; "
        "batch 1, median "
        f"of {args.repeats} forward passes; temporal models T={args.dates}; 3x3 convolution "
        f"peak {peak:.1f} GFLOP/s before the models and {peak_after:.1f} after (% of peak: of "
        "the one before)"
    )
    print(header)
    if args.markdown:
        args.markdown.write_text(_markdown(rows, header))
    if args.json:
        _write_json(args.json, header, peak, rows, complete=True)


def _write_json(path: Path, header: str, peak: float, rows: list[dict], *, complete: bool) -> None:
    """The rows as JSON, written to a temporary name first and then renamed."""
    tmp = path.with_name(path.name + ".tmp")
    doc = {"header": header, "peak_gflops": peak, "rows": rows, "complete": complete}
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def _device_name(device: str) -> str:
    """The GPU's name for CUDA, else the CPU's model name (``/proc/cpuinfo``, else
    :mod:`platform`)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _print(r: dict) -> None:
    gflops = f"{r['gflops']:9.1f}{100 * r['peak_fraction']:7.0f}%" if "gflops" in r else " " * 17
    params = f"{r['params']:>12,}" if "params" in r else " " * 12
    gmacs = f"{r['gmacs']:9.2f}" if "gmacs" in r else " " * 9
    median = f"{r['median_s']:10.3f}" if "median_s" in r else " " * 10
    mib = f"{r['peak_extra_mib']:7.0f}" if "peak_extra_mib" in r else " " * 7
    note = r.get("error", "")
    if "compile_s" in r:
        note = f"first call (compiles) {r['compile_s']:.1f} s"
    print(f"{r['model']:18}{r['size']:>5}{r['runtime']:>12}{params}{gmacs}{median}{gflops}{mib}"
          f"  {note}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
