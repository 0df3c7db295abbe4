"""``sparkplane plan``: will this model fit on that device, in how much memory, how fast."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sparkplane.planner import (
    DeviceProfile,
    ModelSpec,
    Plan,
    PlannerError,
    PlanRequest,
    builtin_profiles,
    load_model,
    plan,
    plan_to_dict,
    spec_from_numbers,
)
from sparkplane.planner.plan import DevicePlan

ProfilesProvider = Callable[[], Mapping[str, DeviceProfile]]


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f}"


def _rate(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _header(p: Plan, console: Console) -> None:
    m = p.model
    active = f" ({m.params_active / 1e9:.2f}B active)" if m.params_active < m.params_total else ""
    formats = ", ".join(f"{k} {_gb(v)} GB" for k, v in m.weights_by_format.items() if v >= 1e8)
    console.print(f"[bold]{m.name}[/bold]  {m.kind}, from {m.source}, {m.quant}")
    console.print(
        f"  parameters {m.params_total / 1e9:.2f}B{active}; weights {_gb(m.weight_bytes)} GB"
    )
    if formats:
        console.print(f"  by precision: {formats}")
    if p.mode == "diffusion" and p.image:
        i = p.image
        console.print(f"  {i['width']}x{i['height']}, batch {i['batch']}, {i['steps']} steps")
    elif p.mode == "training":
        console.print(f"  {p.training} fine-tune, {p.sequences} x {p.context} tokens per step")
    else:
        kv = f"KV {m.kv_bytes_per_token / 1024:.0f} KiB/token ({p.kv_dtype})"
        console.print(f"  engine {p.engine}; context {p.context}, {p.sequences} sequence(s); {kv}")
        console.print(
            f"  speeds for a {p.prompt_tokens}-token prompt and {p.output_tokens} tokens out"
            f" (decode at {p.decode_context} tokens in the cache)"
        )
    if m.assumed:
        console.print(f"  [yellow]assumed:[/yellow] {', '.join(m.assumed)}")


def _table(p: Plan) -> Table:
    t = Table(title="Fit and speed by device (memory in GB = 10^9 bytes)")
    for col in (
        "device",
        "engine",
        "fits",
        "usable",
        "needs",
        "headroom",
        "weights",
        "KV",
        "other",
    ):
        t.add_column(col, justify="left" if col == "device" else "right", no_wrap=True)
    if p.mode == "inference":
        for col in ("max ctx", "max seqs", "prefill tok/s", "decode tok/s"):
            t.add_column(col, justify="right")
    elif p.mode == "diffusion":
        t.add_column("s/step", justify="right")
        t.add_column("s/image", justify="right")
    else:
        t.add_column("train tok/s", justify="right")
    for d in p.devices:
        weights = sum(i.bytes for i in d.memory.items if i.label.startswith("weights"))
        kv = d.memory.get("kv_cache")
        other = d.memory.total - weights - kv
        fits = "[green]yes[/green]" if d.fits else "[red]no[/red]"
        row = [
            d.device,
            d.engine,
            fits,
            _gb(d.usable_bytes),
            _gb(d.memory.total),
            _gb(d.headroom_bytes),
            _gb(weights),
            _gb(kv),
            _gb(other),
        ]
        row += _speed_cells(p, d)
        t.add_row(*row)
    return t


def _speed_cells(p: Plan, d: DevicePlan) -> list[str]:
    if p.mode == "inference":
        dec = d.decode
        decode = "-"
        if dec is not None:
            decode = _rate(dec.tokens_per_s)
            if dec.likely_high > dec.likely_low:
                decode += f" ({_rate(dec.likely_low)}-{_rate(dec.likely_high)})"
            if p.sequences > 1:
                decode += f" ({_rate(dec.total_tokens_per_s)} total)"
        return [
            str(d.max_context) if d.max_context is not None else "-",
            str(d.max_sequences) if d.max_sequences is not None else "-",
            _rate(d.prefill.tokens_per_s if d.prefill else None),
            decode,
        ]
    if p.mode == "diffusion":
        s = d.diffusion
        return [
            f"{s.seconds_per_step:.2f}" if s else "-",
            f"{s.seconds_per_image:.1f}" if s else "-",
        ]
    return [_rate(d.training.tokens_per_s if d.training else None)]


def _breakdown(p: Plan, console: Console) -> None:
    shown: set[str] = set()
    for d in p.devices:
        if d.engine in shown:
            continue
        shown.add(d.engine)
        console.print(f"[bold]Memory breakdown[/bold] with {d.engine}")
        for item in d.memory.items:
            console.print(f"  {item.label:<34} {_gb(item.bytes):>7} GB  {item.detail}")
    timed = [d for d in p.devices if d.decode is not None]
    if timed:
        console.print("[bold]Decode step[/bold] = memory + compute + per-layer overhead")
    for d in timed:
        dec, e = d.decode, d.efficiency
        assert dec is not None
        console.print(
            f"  {d.device:<13} reads {_gb(dec.weight_bytes_per_step + dec.kv_bytes_per_step)} GB:"
            f" memory {dec.memory_ms:.2f} ms, compute {dec.compute_ms:.2f} ms,"
            f" overhead {dec.overhead_ms:.2f} ms; bandwidth x{e.bandwidth:.2f},"
            f" {e.layer_overhead_us:.0f} us/layer, compute x{e.compute:.2f} ({e.basis})"
        )
        console.print(f"    {_likely(d)}")
        if d.decode_window:
            speeds = " / ".join(_rate(w.tokens_per_s) for w in d.decode_window)
            shares = "/".join(f"{w.share:.0%}" for w in d.decode_window)
            console.print(f"    over the {p.context}-token window: {speeds} tok/s at {shares}")
        if e.sources:
            console.print(f"    rests on: {', '.join(e.sources)}")
    for d in p.devices:
        for note in d.notes:
            if not note.startswith("assumed"):
                console.print(f"  [dim]{d.device}: {note}[/dim]")
    for g in p.together:
        names = " + ".join(m.name for m in g.members)
        verdict = "[green]fit together[/green]" if g.fits else "[red]do not fit together[/red]"
        console.print(
            f"  {g.device}: {names} {verdict}: {_gb(g.total_bytes)} of {_gb(g.usable_bytes)} GB"
        )


def _likely(d: DevicePlan) -> str:
    """'decode 38 tok/s, likely 34-43; prefill ...' from the fit's observed spread."""
    parts = []
    for name, est in (("decode", d.decode), ("prefill", d.prefill)):
        if est is None:
            continue
        text = f"{name} {_rate(est.tokens_per_s)} tok/s"
        if est.likely_high > est.likely_low:
            text += f", likely {_rate(est.likely_low)}-{_rate(est.likely_high)}"
        parts.append(text)
    return "; ".join(parts)


def _spec(
    model: str | None,
    params_b: float | None,
    active_params_b: float | None,
    layers: int | None,
    kv_heads: int | None,
    head_dim: int | None,
) -> ModelSpec:
    if params_b is not None:
        return spec_from_numbers(
            params_b, active_params_b, layers=layers, kv_heads=kv_heads, head_dim=head_dim
        )
    if not model:
        raise typer.BadParameter("give MODEL (catalog name, GGUF file or folder) or --params-b")
    return load_model(model)


def register(app: typer.Typer, profiles: ProfilesProvider | None = None) -> None:
    """Add the ``plan`` command to ``app``; ``profiles`` supplies device profiles."""
    get_profiles: ProfilesProvider = profiles or builtin_profiles

    @app.command("plan")
    def plan_command(
        model: Annotated[
            str | None, typer.Argument(help="Catalog name, GGUF file or model folder.")
        ] = None,
        device: Annotated[
            list[str] | None, typer.Option("--device", "-d", help="Device id (repeat or comma).")
        ] = None,
        quant: Annotated[str | None, typer.Option(help="Precision or GGUF type.")] = None,
        context: Annotated[
            int | None, typer.Option(help="Context window reserved per sequence (tokens).")
        ] = None,
        prompt_tokens: Annotated[
            int | None, typer.Option(help="Prompt tokens in use (default 512).")
        ] = None,
        output_tokens: Annotated[
            int | None, typer.Option(help="Output tokens in use (default 128).")
        ] = None,
        sequences: Annotated[int | None, typer.Option(help="Concurrent sequences.")] = None,
        engine: Annotated[
            str | None, typer.Option(help="llama.cpp, ollama, vllm, sglang or trt-llm.")
        ] = None,
        kv_dtype: Annotated[
            str | None, typer.Option(help="KV cache dtype (fp16, fp8, q8_0).")
        ] = None,
        params_b: Annotated[float | None, typer.Option(help="Total parameters, billions.")] = None,
        active_params_b: Annotated[
            float | None, typer.Option(help="Active parameters per token (MoE), billions.")
        ] = None,
        layers: Annotated[int | None, typer.Option(help="Layers (with --params-b).")] = None,
        kv_heads: Annotated[int | None, typer.Option(help="KV heads (with --params-b).")] = None,
        head_dim: Annotated[int | None, typer.Option(help="Head dim (with --params-b).")] = None,
        train: Annotated[
            str | None, typer.Option(help="Plan a fine-tune: full, lora, qlora.")
        ] = None,
        lora_rank: Annotated[int | None, typer.Option(help="LoRA rank (default 16).")] = None,
        width: Annotated[int | None, typer.Option(help="Image width (diffusion).")] = None,
        height: Annotated[int | None, typer.Option(help="Image height (diffusion).")] = None,
        batch: Annotated[int | None, typer.Option(help="Images per batch (diffusion).")] = None,
        steps: Annotated[int | None, typer.Option(help="Denoising steps (diffusion).")] = None,
        with_: Annotated[
            list[str] | None,
            typer.Option("--with", help="Catalog model that must stay resident too (repeat)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Will MODEL fit on each device, in how much memory, and how fast."""
        try:
            spec = _spec(model, params_b, active_params_b, layers, kv_heads, head_dim)
            request = PlanRequest(
                devices=device or None,
                quant=quant,
                engine=engine,
                context=context,
                prompt_tokens=prompt_tokens,
                output_tokens=output_tokens,
                sequences=sequences,
                kv_dtype=kv_dtype,
                train=train,
                lora_rank=lora_rank,
                width=width,
                height=height,
                batch=batch,
                steps=steps,
            )
            together = [load_model(w, allow_paths=False) for w in with_ or ()]
            result = plan(spec, request, profiles=get_profiles(), together=together)
        except PlannerError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(plan_to_dict(result), indent=2))
            return
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # piped output: do not squeeze the table
        _header(result, console)
        console.print(_table(result))
        _breakdown(result, console)
