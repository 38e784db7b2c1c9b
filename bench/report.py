"""results (the dict run.py writes to latest.json) -> the markdown tables of latest.md."""

from __future__ import annotations

import statistics

MIB = 1 << 20


def _s(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s" if x < 100 else f"{x:.0f} s"


def secs(summary: dict) -> str:
    if not summary or summary.get("median") is None:
        return "—"
    if summary["n"] == 1:
        return f"{_s(summary['median'])} (1 run)"
    return f"{_s(summary['median'])} ({_s(summary['min'])[:-2]}–{_s(summary['max'])})"


def mib(summary: dict) -> str:
    if summary["n"] == 1:
        return f"{summary['median'] / MIB:.0f} MiB"
    return f"{summary['median'] / MIB:.0f} MiB ({summary['min'] / MIB:.0f}–{summary['max'] / MIB:.0f} MiB)"


def size(n: int) -> str:
    return f"{n / MIB:,.0f} MiB"


def spread(values: list[float], fmt, unit: str = "") -> str:
    """Median (min–max) of per-model figures."""
    return f"{fmt(statistics.median(values))}{unit} ({fmt(min(values))}–{fmt(max(values))}{unit})"


def faster(ratio: float) -> str:
    """baseline time / smenv time, in words."""
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main_table(r: dict) -> list[str]:
    rows = ["| measure | smenv | baseline | ratio | goal | met |", "|---|---|---|---|---|---|"]
    add = rows.append
    if "inspection" in r:
        models = r["inspection"]["models"]
        corpus = [m for m in models if m["model"] != "large-generated"]
        large = next(m for m in models if m["model"] == "large-generated")
        lm = r["inspection"]["large_model"]
        add("| **1. Inspection** (baseline: `saved_model_cli show --all`, "
            f"{r['inspection']['tensorflow']}) | | | | | |")
        speed = [m["speedup"] for m in corpus]
        memory = [m["memory_ratio"] for m in corpus]
        fast = sum(s >= 20 for s in speed)
        small = sum(m <= 0.2 for m in memory)
        sec = lambda x: f"{x:.2f}"  # noqa: E731
        add(f"| corpus, {len(corpus)} SavedModels: wall time, median of the per-model medians (fastest–slowest model) "
            f"| {spread([m['smenv']['seconds']['median'] for m in corpus], sec, ' s')} "
            f"| {spread([m['saved_model_cli']['seconds']['median'] for m in corpus], sec, ' s')} "
            f"| {spread(speed, lambda x: f'{x:.1f}x')} faster | ≥ 20x faster | {met(fast == len(corpus))} ({fast}/{len(corpus)} models) |")
        whole = lambda x: f"{x:.0f}"  # noqa: E731
        add(f"| corpus: peak memory (max RSS) | {spread([m['smenv']['max_rss_bytes']['median'] / MIB for m in corpus], whole, ' MiB')} "
            f"| {spread([m['saved_model_cli']['max_rss_bytes']['median'] / MIB for m in corpus], whole, ' MiB')} "
            f"| {spread(memory, lambda x: f'1/{1 / x:.0f}')} | ≤ 1/5 | {met(small == len(corpus))} ({small}/{len(corpus)} models) |")
        st = r["inspection"]["startup"]
        floor = st["saved_model_cli"]["seconds"]["median"] / st["smenv"]["seconds"]["median"]
        add(f"| floor under any model: `smenv --version` / `python -c 'import tensorflow'` "
            f"| {secs(st['smenv']['seconds'])}, {mib(st['smenv']['max_rss_bytes'])} "
            f"| {secs(st['saved_model_cli']['seconds'])}, {mib(st['saved_model_cli']['max_rss_bytes'])} "
            f"| {floor:.1f}x | (context) | |")
        pb = large["saved_model_pb_bytes"] / 1e6
        add(f"| large generated SavedModel ({lm['functions']:,} functions, {pb:.0f} MB saved_model.pb): wall time "
            f"| {secs(large['smenv']['seconds'])} | {secs(large['saved_model_cli']['seconds'])} "
            f"| {faster(large['speedup'])} | ≥ 20x faster | {met(large['speedup'] >= 20)} |")
        add(f"| large generated SavedModel: peak memory | {mib(large['smenv']['max_rss_bytes'])} "
            f"| {mib(large['saved_model_cli']['max_rss_bytes'])} | 1/{1 / large['memory_ratio']:.0f} | ≤ 1/5 "
            f"| {met(large['memory_ratio'] <= 0.2)} |")
    if "build" in r:
        b = r["build"]
        cold, warm, probe = b["cold"], b["rebuild"], b["metadata_step_seconds"]
        add(f"| **2. Build, {b['model']}** (baseline: plain Dockerfile, see notes) | | | | | |")
        ratio = cold["baseline"]["median"] / cold["smenv"]["median"]
        add(f"| cold build (`smenv build --no-verify`, whole command) | {secs(cold['smenv'])} | {secs(cold['baseline'])} "
            f"| {faster(ratio)} | no slower than the baseline | {met(ratio >= 1)} |")
        ratio = warm["baseline"]["median"] / warm["smenv"]["median"]
        ok = warm["smenv"]["median"] <= 2 and ratio >= 30
        add(f"| rebuild after a model-only change, whole command | {secs(warm['smenv'])} | {secs(warm['baseline'])} "
            f"| {faster(ratio)} | ≤ 2 s and ≥ 30x faster | {met(ok)} |")
        add(f"| rebuild, smenv's image assembly alone (`build_seconds`: the model's layer written and loaded; "
            f"no reading, locking or process start) | {secs(warm['smenv_assembly'])} | | | (context) | |")
        big = b.get("large_model")
        if big:
            ratio = big["smenv"]["median"] / big["copy"]["median"]
            add(f"| rebuild after a small change to a {size(big['model_bytes'])} model (its large file unchanged), "
                f"whole command, against `cp -r` of the model | {secs(big['smenv'])} | {secs(big['copy'])} (copy) "
                f"| {ratio:.1f}x the copy | ≤ 2x the copy | {met(ratio <= 2)} |")
            if big.get("smenv_rewritten"):
                ratio = big["smenv_rewritten"]["median"] / big["copy"]["median"]
                add(f"| rebuild after the large file is rewritten (new weights), whole command, against `cp -r` "
                    f"| {secs(big['smenv_rewritten'])} | {secs(big['copy'])} (copy) | {ratio:.1f}x the copy "
                    f"| ≤ 2x the copy | {met(ratio <= 2)} |")
        ids = b.get("cold_image_ids") or []
        if ids:
            add(f"| reproducible: image IDs of {len(ids)} cold builds (everything of smenv's removed before each) "
                f"| {len(set(ids))} distinct (`{ids[0][:19]}`) | | | one ID | {met(len(set(ids)) == 1)} |")
        add(f"| engine cost of one metadata-only step (LABEL), on the base image / on the smenv image "
            f"| {secs(probe['on_base'])} / {secs(probe['on_smenv_image'])} | | | (context) | |")
    if "size" in r:
        s = r["size"]
        add("| **3. Image size** | | | | | |")
        add(f"| image | {size(s['smenv_bytes'])} | {size(s['baseline_bytes'])} "
            f"| {s['smenv_bytes'] / s['baseline_bytes']:.2f} of the baseline | | |")
        over = s["smenv_bytes"] / s["floor_bytes"] - 1
        add(f"| floor: base image {size(s['base_bytes'])} + locked packages {size(s['locked_packages_bytes'])} "
            f"| {size(s['smenv_bytes'])} | floor {size(s['floor_bytes'])} | {over:+.1%} over the floor "
            f"| within 15% of the floor | {met(over <= 0.15)} |")
    if "verify" in r:
        v = r["verify"]
        n = v["command"]["n"]
        add(f"| **4. Verification latency** (`smenv verify --json`, {n} run(s)) | | | | | |")
        for key, label in [
            ("container_start", "container start (`docker run --rm IMAGE true`, same sandbox flags)"),
            ("import_tensorflow", "TensorFlow import"),
            ("load", "model load"),
            ("first_call", "first call (serving_default)"),
            ("other", "rest of the container's time: create and start, Python start, other signatures, exit"),
            ("container", "whole verification container (`container_seconds`)"),
            ("command", "whole `smenv verify` command"),
        ]:
            add(f"| {label} | {secs(v[key])} | | | | |")
    if "serve" in r:
        add_serving(r["serve"], add)
    return rows


def add_serving(s: dict, add) -> None:
    one, many = s["one_client"], s["sixteen_clients"]
    b1, b16 = s["batching_one_client"], s["batching_sixteen_clients"]
    errors16 = sum(many["errors"].values())
    add(f"| **5. Serving** (`docker run` of the smenv image, TF Serving `:predict` under wrk, {one['seconds']} s each; "
        f"baseline: the model's own call timed in the same container) | | | | | |")
    add(f"| p50 latency, 1 client | {one['p50_ms']:.2f} ms | {s['model_call']['p50'] * 1000:.2f} ms (model call) "
        f"| server adds {s['server_adds_p50_ms']:.2f} ms | adds ≤ 1 ms | {met(s['server_adds_p50_ms'] <= 1)} |")
    add(f"| p99 latency, 1 / 16 clients | {one['p99_ms']:.2f} / {many['p99_ms']:.2f} ms "
        f"| {s['model_call']['p99'] * 1000:.2f} ms (model call) | | (context) | |")
    add(f"| throughput, 1 / 16 clients | {one['throughput_rps']:.0f} / {many['throughput_rps']:.0f} req/s | | | (context) | |")
    add(f"| errors under 16 clients for {many['seconds']} s | {errors16} of {many['requests']} | | | none | {met(errors16 == 0)} |")
    growth = s.get("memory_growth_fraction")
    if growth is not None:
        add(f"| memory over the 16-client run (min → max of {len(s['memory_bytes'])} samples) "
            f"| {min(s['memory_bytes']) / 2**20:.0f} → {max(s['memory_bytes']) / 2**20:.0f} MiB | | "
            f"| flat (≤ 10% growth) | {met(growth <= 0.10)} |")
    ratio = b16["throughput_rps"] / b1["throughput_rps"]
    add(f"| batching on: throughput at 16 clients / at 1 client | {b16['throughput_rps']:.0f} / {b1['throughput_rps']:.0f} req/s "
        f"| | {ratio:.1f}x | ≥ 3x | {met(ratio >= 3)} |")
    ready = s["ready"]
    parts = ", ".join(f"{k.split('_')[0]} {v:.2f} s" for k, v in ready.items() if v is not None)
    if parts:  # the rest: the container's start, Python's, the server's own imports, the probe's interval
        parts += f", the rest {s['ready_seconds'] - sum(v for v in ready.values() if v is not None):.2f} s"
    add(f"| `docker run` to ready ({parts or 'no breakdown in the log'}) | {s['ready_seconds']:.2f} s | | | (context) | |")


def model_table(r: dict) -> list[str]:
    rows = [
        "| model | smenv time | saved_model_cli time | faster | smenv RSS | saved_model_cli RSS | memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in r["inspection"]["models"]:
        cli = m["saved_model_cli"]
        failed = "" if cli["ok"] else " (failed)"
        rows.append(
            f"| {m['model']} | {secs(m['smenv']['seconds'])} | {secs(cli['seconds'])}{failed} | {m['speedup']:.1f}x "
            f"| {mib(m['smenv']['max_rss_bytes'])} | {mib(cli['max_rss_bytes'])} | 1/{1 / m['memory_ratio']:.0f} |"
        )
    return rows


def markdown(r: dict) -> str:
    machine = r["machine"]
    out = [
        f"Benchmark of smenv {r['smenv_version']} ({r['finished']}, `make bench`, {r['total_seconds'] / 60:.0f} min): "
        f"{r['runs']} run(s) per figure ({r['cold_runs']} for cold builds), median (min–max); "
        f"{machine['cpus']} CPUs, {machine['memory_gib']} GiB, Docker {machine.get('docker_server', '?')} "
        f"({machine.get('storage_driver', '?')}), load average at start {machine['loadavg_at_start'][0]}.",
        "",
        *main_table(r),
        "",
    ]
    if r.get("notes"):
        out += ["Notes:", ""] + [f"- {note}" for note in r["notes"]] + [""]
    if "inspection" in r:
        out += ["Inspection, per model (saved_model_cli `(failed)`: it exited with an error, time up to the failure):",
                "", *model_table(r), ""]
    return "\n".join(out)
