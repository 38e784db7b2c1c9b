"""All terminal output: rich views for people, one JSON object for machines, errors on stderr.

Commands build a result object and hand it here; nothing else in smenv prints.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from smenv.errors import SmenvError
from smenv.model.facts import ModelFacts, TensorSpec

if TYPE_CHECKING:
    from smenv.pipeline import Built, Generated
    from smenv.verify.runner import Verdict

# Off a terminal (CI logs, pipes) rich assumes 80 columns; logs read better wider, unbroken.
out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)


def print_json(data: Any) -> None:
    # Plain print, not rich: JSON must not be wrapped or coloured.
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def print_error(error: SmenvError, as_json: bool) -> None:
    if as_json:
        print_json({"ok": False, "error": error.to_json()})
    err.print(Text(f"smenv: error: {error}"), soft_wrap=True)


@contextmanager
def progress() -> Iterator[Callable[[str], None]]:
    """A status line on stderr for long steps; each message is also kept as a log line.

    On a terminal, rich shows a spinner with the current step; elsewhere (CI, pipes) each step is
    printed once, so logs still show where time went.
    """
    if err.is_terminal:
        with err.status("starting") as status:
            def update(message: str) -> None:
                status.update(message)
                err.print(Text(f"smenv: {message}", style="dim"), soft_wrap=True)

            yield update
    else:
        yield lambda message: err.print(Text(f"smenv: {message}", style="dim"), soft_wrap=True)


def spec_text(spec: TensorSpec) -> str:
    dtype = spec.dtype or "?"
    if spec.shape is None:
        shape = "[unknown rank]" if spec.dtype else ""
    else:
        shape = "[" + ",".join("?" if d is None else str(d) for d in spec.shape) + "]"
    kind = "" if spec.kind == "dense" else f" ({spec.kind})"
    return f"{spec.name}: {dtype}{shape}{kind}"


def show_facts(facts: ModelFacts) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    rows = [
        ("Model", facts.path),
        ("Read from", facts.model_root if facts.model_root != facts.path else None),
        ("Format", facts.format + (" (weights only)" if facts.weights_only else "")),
        ("TensorFlow", _version_line(facts.tensorflow_version, facts.tensorflow_git_version)),
        ("Keras", facts.keras_version or "not recorded"),
        ("Saved at", facts.saved_at),
        ("Size", _size(facts.size_bytes)),
        ("Digest", facts.digest),
    ]
    for label, value in rows:
        if value is not None:
            head.add_row(label, Text(str(value)))
    out.print(head)

    if len(facts.meta_graphs) > 1:
        table = Table(title="Meta graphs", title_justify="left", show_edge=False)
        for col in ("tags", "TensorFlow", "signatures", "nodes"):
            table.add_column(col)
        for mg in facts.meta_graphs:
            table.add_row(",".join(mg.tags), mg.tensorflow_version or "-", ", ".join(mg.signature_names), str(mg.op_count))
        out.print(table)
    elif facts.meta_graphs:
        out.print(Text(f"Tags        {','.join(facts.meta_graphs[0].tags) or '(none)'}"))

    if facts.signatures:
        table = Table(title="Signatures", title_justify="left", show_edge=False)
        table.add_column("name", style="bold")
        table.add_column("inputs")
        table.add_column("outputs")
        for sig in facts.signatures:
            table.add_row(
                sig.name,
                Text("\n".join(spec_text(s) for s in sig.inputs) or "-"),
                Text("\n".join(spec_text(s) for s in sig.outputs) or "-"),
            )
        out.print(table)

    if facts.ops:
        total = sum(facts.ops.values())
        out.print(Text(f"Ops ({len(facts.ops)} types, {total} nodes)", style="bold"))
        out.print(Text("  " + "  ".join(f"{op}×{n}" for op, n in facts.ops.items())), soft_wrap=True)
    if facts.layers:
        out.print(Text(f"Layers ({sum(facts.layers.values())})", style="bold"))
        out.print(Text("  " + "  ".join(f"{name}×{n}" for name, n in facts.layers.items())), soft_wrap=True)

    if facts.custom_objects:
        table = Table(title="Custom objects (not from Keras / tf.keras)", title_justify="left", show_edge=False)
        for col in ("kind", "class", "module", "registered name", "uses"):
            table.add_column(col)
        for obj in facts.custom_objects:
            table.add_row(obj.kind, obj.class_name, obj.module or "-", obj.registered_name or "-", str(obj.count))
        out.print(table)
    else:
        out.print(Text("Custom objects: none"))

    if facts.companion_packages:
        out.print(Text("Companion packages needed", style="bold"))
        for pkg in facts.companion_packages:
            out.print(Text(f"  {pkg.name}: " + "; ".join(pkg.evidence)), soft_wrap=True)
    else:
        out.print(Text("Companion packages: none"))

    for line in facts.notes:
        out.print(Text(f"Note: {line}", style="yellow"), soft_wrap=True)


def _version_line(version: str | None, git: str | None) -> str:
    if version is None:
        return "not recorded in this format"
    return f"{version} ({git})" if git else version


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def show_generated(result: "Generated", next_steps: bool = True) -> None:
    plan = result.plan
    table = Table(title="Environment", title_justify="left", show_edge=False)
    table.add_column("decision", style="bold")
    table.add_column("choice")
    table.add_column("why", overflow="fold")
    for d in plan.decisions:
        style = "yellow" if d.level == "warning" else None
        table.add_row(d.topic, Text(d.choice, style=style), Text(d.reason, style=style))
    out.print(table)
    if result.lock is not None:
        out.print(
            Text(f"Locked {len(result.lock.packages)} packages for Python {result.lock.python} ({result.lock.digest[:19]}…)")
        )
    if result.base_image:
        out.print(Text(f"Base image  {result.base_image}"))
    for line in result.notes:
        if line.startswith("warning: "):  # a load failure foreseen from the model (model/load_risks.py)
            out.print(Text(f"Warning: {line.removeprefix('warning: ')}", style="bold yellow"), soft_wrap=True)
        else:
            out.print(Text(f"Note: {line}", style="yellow"), soft_wrap=True)
    if result.context is not None and next_steps:
        out.print(Text(f"Build context written to {result.context}", style="bold green"))
        out.print(Text(f"Next: smenv build {result.facts.path}  (or by hand: docker build {result.context})"))
    elif result.lock is None:
        out.print(Text("Dry run: nothing was locked or written.", style="dim"))


def show_built(built: "Built") -> None:
    show_generated(built.generated, next_steps=False)
    deps = f"; dependencies {built.dependencies}" if built.dependencies else ""
    deps += f"; base image {built.generated.base_image} {built.base_obtained}" if built.base_obtained else ""
    out.print(Text(f"Image {built.image} ({built.image_id[:19]}), {built.size_bytes / 2**20:.0f} MiB, "
                   f"built in {built.build_seconds:.1f} s{deps}"))
    out.print(Text(f"Build log {built.log_path}", style="dim"))
    if built.fixed:
        out.print(Text(f"--fix added {', '.join(built.fixed)}", style="yellow"))
    if built.verdict is not None:
        show_verdict(built.verdict)
    if built.saved:
        out.print(Text(f"Saved {built.saved} (docker-archive: docker load -i, or skopeo copy docker-archive:...)"))
    if built.pushed_digest is not None:
        out.print(Text(f"Pushed {built.image}" + (f"@{built.pushed_digest}" if built.pushed_digest else ""), style="bold green"))


def show_serving(running, detached: bool) -> None:
    """`smenv serve`: where the server is, and a request per protocol, ready to paste."""
    out.print(Text(f"Serving {running.model_name} from {running.image} on {running.url} "
                   f"(ready in {running.ready_seconds} s)", style="bold green"))
    for what, curl in running.requests:
        out.print(Text(f"  {what}:"))
        out.print(Text(f"    {curl}"), soft_wrap=True)
    out.print(Text(f"  Status: curl {running.url}/v1/models/{running.model_name} · metrics: {running.url}/metrics · "
                   f"API: {running.url}/openapi.json"), soft_wrap=True)
    if detached:
        out.print(Text(f"  Running as {running.container}; stop it with: docker stop {running.container} && docker rm {running.container}"),
                  soft_wrap=True)
    else:
        out.print(Text("  Ctrl-C stops it (SIGTERM: in-flight requests drain) and removes the container.", style="dim"))


def show_served(serve) -> None:
    """The image run as deployed (smenv/verify/serving.py). The probe's result comes from inside the
    image, so every field is read as possibly missing or of another type."""
    result = serve.result if isinstance(serve.result, dict) else {}
    outputs = result.get("outputs") if isinstance(result.get("outputs"), list) else []
    outs = ", ".join(f"{o.get('name')} {o.get('shape')}" for o in outputs if isinstance(o, dict))
    name, signature = result.get("model_name", "?"), result.get("signature", "?")
    out.print(Text(f"  served: ready in {serve.ready_seconds} s (its own command, read-only, no network)"))
    if result.get("not_checked"):
        out.print(Text(f"  served: POST /v1/models/{name}:predict not checked: {result['not_checked']}", style="yellow"),
                  soft_wrap=True)
    else:
        out.print(Text(f"  served: POST /v1/models/{name}:predict ({signature}) -> {outs} in {result.get('seconds')} s"),
                  soft_wrap=True)
    v2 = "ready" if result.get("v2_ready") else "not ready"
    out.print(Text(f"  served: Open Inference Protocol v2 model {v2}; SIGTERM drained, exit {serve.stop_exit_code} "
                   f"in {serve.stop_seconds} s"))


def show_verdict(verdict: "Verdict") -> None:
    result = verdict.result or {}
    if verdict.ok:
        versions = f"Python {result.get('python')}, TensorFlow {result.get('tensorflow')}"
        if result.get("keras"):
            versions += f", Keras {result.get('keras')}"
        timings = result.get("timings", {})
        heading = "OK with notes" if verdict.not_checked else "OK"
        out.print(Text(f"{heading}: the model loads in {verdict.image} ({versions})", style="bold green"))
        out.print(Text(
            f"  import TensorFlow {timings.get('import_tensorflow_s', '?')} s, load {timings.get('load_s', '?')} s, "
            f"container {verdict.seconds} s"
        ))
        notes = {n.signature: n for n in verdict.not_checked}
        for sig in result.get("signatures", []):
            if sig.get("error") or sig["name"] in notes:
                note = notes.pop(sig["name"], None)
                reason = note.reason if note else f"calling it failed ({sig['error']['type']})"
                out.print(Text(f"  {sig['name']}: not checked: {reason}", style="yellow"), soft_wrap=True)
                continue
            outs = ", ".join(f"{o['name']} {o['dtype']}{o['shape']}" for o in sig.get("outputs", []))
            out.print(Text(f"  {sig['name']}: -> {outs} in {sig.get('seconds')} s"))
        for note in notes.values():  # a verifier that stopped before recording the signature
            out.print(Text(f"  {note.signature}: not checked: {note.reason}", style="yellow"), soft_wrap=True)
        for advice in dict.fromkeys(n.advice for n in verdict.not_checked):
            out.print(Text(f"  To check it: {advice}", style="yellow"), soft_wrap=True)
        if "gpus" in result:
            out.print(Text(f"  GPUs seen: {', '.join(result['gpus']) or 'none'}"))
        if verdict.serve is not None:
            show_served(verdict.serve)
        return
    d = verdict.diagnosis
    if d is None and verdict.serve is not None and not verdict.serve.ok:
        out.print(Text(f"FAILED: the model loads, but {verdict.image} does not serve it as deployed", style="bold red"))
        out.print(Text(f"  Why: {verdict.serve.error}"), soft_wrap=True)
        for line in verdict.serve.logs_tail[-5:]:
            out.print(Text(f"  | {line}", style="dim"), soft_wrap=True)
        return
    out.print(Text(f"FAILED: the model does not load in {verdict.image}", style="bold red"))
    if d is not None:
        out.print(Text(f"  Why: {d.summary}"), soft_wrap=True)
        out.print(Text(f"  Fix: {d.fix}"), soft_wrap=True)
        if d.fix_packages:
            out.print(Text(f"  (mechanical: `--fix` adds {', '.join(d.fix_packages)} and rebuilds)", style="dim"))
    for line in verdict.logs_tail[-5:]:
        out.print(Text(f"  | {line}", style="dim"), soft_wrap=True)
