"""Turn the raw results into a Markdown report with ratios, goals and PNG charts."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any


def machine() -> str:
    """One line about the machine the run happened on."""
    cpus = os.cpu_count()
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    model = ""
    with contextlib.suppress(OSError, StopIteration):
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return f"{platform.system()} {platform.release()}, {cpus} CPUs ({model}){mem}, Python {platform.python_version()}"


def goals(results: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(goal, measured, target, met) rows."""
    rows: list[tuple[str, str, str, bool]] = []
    art = results.get("artifacts", {})
    biggest = max((int(s) for s in art.get("raw-s3", {})), default=None)
    if biggest is not None:
        raw = art["raw-s3"][biggest]
        for variant in ("charm-proxied", "charm-direct"):
            mine = art[variant][biggest]
            for way in ("up", "down"):
                ratio = mine[f"{way}_mbps"]["median"] / raw[f"{way}_mbps"]["median"]
                rows.append(
                    (
                        f"{variant} {way} {biggest} MB vs raw boto3",
                        f"{ratio:.2f}x",
                        ">= 0.90x",
                        ratio >= 0.9,
                    )
                )
                versus = (
                    mine[f"{way}_mbps"]["median"]
                    / art["upstream"][biggest][f"{way}_mbps"]["median"]
                )
                rows.append(
                    (
                        f"{variant} {way} {biggest} MB vs upstream",
                        f"{versus:.2f}x",
                        ">= 1.00x",
                        versus >= 1.0,
                    )
                )
        growth = art["charm-proxied"][biggest]["server_rss_growth_mib"]
        rows.append(
            (
                f"server RSS growth while {biggest} MB streams (proxied)",
                f"{growth:.0f} MiB",
                "< 100 MiB",
                growth < 100,
            )
        )
    cluster = results.get("cluster", {})
    one, three = cluster.get("1 unit"), cluster.get("3 units (001) via service")
    if one and three:
        for way in ("up", "down"):
            ratio = three[f"{way}_mbps"]["median"] / one[f"{way}_mbps"]["median"]
            rows.append(
                (
                    f"SeaweedFS {three['size_mb']} MB {way}: 3 units (two copies, via a "
                    "service) vs 1 unit",
                    f"{ratio:.2f}x ({three[f'{way}_mbps']['median']:.0f} vs "
                    f"{one[f'{way}_mbps']['median']:.0f} MB/s)",
                    "reported",
                    True,
                )
            )
    tracking = results.get("tracking", {})
    # CrateDB against PostgreSQL, the charm's server on both, auth off and on
    # (issue 22's goals): times are CrateDB / PostgreSQL, rates PostgreSQL's
    # over CrateDB's for log_batch (so that <= 2x reads the same way) and
    # CrateDB / PostgreSQL for the load.
    for variant, how in (("charm", "auth off"), ("charm-auth", "auth on")):
        crate = tracking.get("cratedb", {}).get(variant)
        pg = tracking.get("postgresql", {}).get(variant)
        if not (crate and pg):
            continue
        where = f"cratedb vs PostgreSQL ({how}, charm's server on both)"
        for key, label, limit in (
            ("log_metric_p50_ms", "log_metric p50", 2.0),
            ("log_metric_p95_ms", "log_metric p95", 2.5),
        ):
            ratio = crate[key] / pg[key]
            rows.append(
                (
                    f"{where}: {label}",
                    f"{ratio:.2f}x ({crate[key]:.1f} vs {pg[key]:.1f} ms)",
                    f"<= {limit:.1f}x",
                    ratio <= limit,
                )
            )
        batch = pg["log_batch_metrics_per_s"] / crate["log_batch_metrics_per_s"]
        rows.append(
            (
                f"{where}: log_batch of 1,000 metrics, time",
                f"{batch:.2f}x ({crate['log_batch_metrics_per_s']:.0f} vs "
                f"{pg['log_batch_metrics_per_s']:.0f} metrics/s)",
                "<= 2.0x",
                batch <= 2.0,
            )
        )
        search = crate["search_runs_s"]["median"] / pg["search_runs_s"]["median"]
        rows.append(
            (
                f"{where}: search_runs over {crate['search_found']} runs, ordered by a metric",
                f"{search:.2f}x ({crate['search_runs_s']['median']:.3f} vs "
                f"{pg['search_runs_s']['median']:.3f} s)",
                "<= 2.0x",
                search <= 2.0,
            )
        )
        load = crate["load_requests_per_s"] / pg["load_requests_per_s"]
        clean = crate["load_errors"] == 0 and crate["load_lost_writes"] == 0
        rows.append(
            (
                f"{where}: {crate['load_clients']} clients, requests/s (errors, lost writes)",
                f"{load:.2f}x ({crate['load_requests_per_s']:.1f} vs "
                f"{pg['load_requests_per_s']:.1f}; {crate['load_errors']} errors, "
                f"{crate['load_lost_writes']} lost)",
                ">= 0.5x, 0 errors, 0 lost",
                load >= 0.5 and clean,
            )
        )
        if variant == "charm":
            for key, label in (
                ("rss_idle_mib", "server RSS idle"),
                ("rss_load_peak_mib", "server RSS under load"),
            ):
                rows.append(
                    (
                        f"{where}: {label}",
                        f"{crate[key] / pg[key]:.2f}x ({crate[key]:.1f} vs {pg[key]:.1f})",
                        "reported",
                        True,
                    )
                )
    # The charm's default (basic-auth, logins cached 30 s) and, on SQLite, auth
    # without the cache (a scrypt check on every call), against the same store's
    # server with auth=false, in the same run.
    for store_kind, variants in tracking.items():
        open_ = variants.get("charm")
        for variant, what in (
            ("charm-auth", "auth on (default, 30 s cache)"),
            ("charm-auth-nocache", "auth on, auth-cache-seconds=0"),
        ):
            authed = variants.get(variant)
            if not (open_ and authed):
                continue
            for key, label in (
                ("log_metric_p50_ms", "log_metric p50"),
                ("load_requests_per_s", f"{authed['load_clients']} clients, requests/s"),
                ("rss_idle_mib", "server RSS idle"),
            ):
                ratio = authed[key] / open_[key]
                # The goal (issue 22): the default, auth on with the cache, adds
                # at most 20% to log_metric p50 on every store.
                goal = key == "log_metric_p50_ms" and variant == "charm-auth"
                rows.append(
                    (
                        f"{store_kind}: {label}, {what} vs auth=false",
                        f"{ratio:.2f}x ({authed[key]:.1f} vs {open_[key]:.1f})",
                        "<= 1.20x" if goal else "reported",
                        ratio <= 1.2 if goal else True,
                    )
                )
    for store, pair in tracking.items():
        charm, upstream = pair.get("charm"), pair.get("upstream")
        if not (charm and upstream):
            continue
        p50 = charm["log_metric_p50_ms"] / upstream["log_metric_p50_ms"]
        rows.append(
            (
                f"{store}: log_metric p50 latency vs upstream",
                f"{p50:.2f}x",
                "<= 0.33x",
                p50 <= 1 / 3,
            )
        )
        rps = charm["load_requests_per_s"] / upstream["load_requests_per_s"]
        rows.append(
            (
                f"{store}: {charm['load_clients']} clients, requests/s vs upstream",
                f"{rps:.2f}x",
                ">= 2.00x",
                rps >= 2,
            )
        )
        errors = charm["load_errors"] + charm["load_lost_writes"]
        rows.append(
            (f"{store}: errors + lost writes under load (charm)", str(errors), "0", errors == 0)
        )
        idle = charm["rss_idle_mib"] / upstream["rss_idle_mib"]
        rows.append(
            (f"{store}: server RSS idle vs upstream", f"{idle:.2f}x", "<= 0.33x", idle <= 1 / 3)
        )
        peak = charm["rss_load_peak_mib"] / upstream["rss_load_peak_mib"]
        rows.append(
            (
                f"{store}: server RSS under load vs upstream",
                f"{peak:.2f}x",
                "<= 0.33x",
                peak <= 1 / 3,
            )
        )
    hooks = results.get("hooks", {})
    one = hooks.get("one_client", {})
    if "nothing" in one:
        base = statistics.median(r["hook_s"] for r in one["nothing"])
        for charm, runs in one.items():
            if charm == "nothing":
                continue
            hook = statistics.median(r["hook_s"] for r in runs)
            ratio = hook / base
            rows.append(
                (
                    f"{charm}: hook (import ops + charm + first reconcile, 1 client) vs do-nothing charm",
                    f"{ratio:.2f}x ({hook:.2f} s vs {base:.2f} s)",
                    "<= 1.50x",
                    ratio <= 1.5,
                )
            )
    for charm, by_clients in hooks.get("scale", {}).items():
        counts = sorted(int(c) for c in by_clients)
        top = by_clients[counts[-1]]["steady_reconcile_s"] if counts else 0.0
        rows.append(
            (f"{charm}: reconcile with {counts[-1]} clients", f"{top:.2f} s", "<= 1 s", top <= 1.0)
        )
        if len(counts) >= 2:
            lo, hi = counts[-2], counts[-1]
            growth = by_clients[hi]["steady_reconcile_s"] / max(
                1e-6, by_clients[lo]["steady_reconcile_s"]
            )
            rows.append(
                (
                    f"{charm}: reconcile growth {lo} -> {hi} clients",
                    f"{growth:.1f}x",
                    f"<= {hi / lo:.0f}x (linear)",
                    growth <= hi / lo * 1.1,
                )
            )
    return rows


def charts(results: dict[str, Any], out: Path) -> list[str]:
    """PNG charts; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    art = results.get("artifacts", {})
    if art:
        sizes = sorted({int(s) for v in art.values() for s in v})
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, way in zip(axes, ("up", "down"), strict=True):
            width = 0.2
            for n, variant in enumerate(("charm-proxied", "charm-direct", "upstream", "raw-s3")):
                values = [
                    art.get(variant, {}).get(s, {}).get(f"{way}_mbps", {}).get("median", 0)
                    for s in sizes
                ]
                ax.bar([i + n * width for i in range(len(sizes))], values, width, label=variant)
            ax.set_xticks([i + 1.5 * width for i in range(len(sizes))], [f"{s} MB" for s in sizes])
            ax.set_ylabel("MB/s (median)")
            ax.set_title(f"artifact {way}load")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(out / "artifacts.png")
        plt.close(fig)
        made.append("artifacts.png")
    tracking = results.get("tracking", {})
    if tracking:
        fig, axes = plt.subplots(1, 3, figsize=(13, 4))
        labels = [f"{store}\n{side}" for store in tracking for side in tracking[store]]
        rows = [tracking[store][side] for store in tracking for side in tracking[store]]
        for ax, key, title in zip(
            axes,
            ("log_metric_p50_ms", "load_requests_per_s", "rss_load_peak_mib"),
            ("log_metric p50 (ms)", "requests/s under load", "server RSS under load (MiB)"),
            strict=True,
        ):
            ax.bar(
                labels,
                [r[key] for r in rows],
                color=["tab:blue" if "charm" in lab else "tab:gray" for lab in labels],
            )
            ax.set_title(title)
        fig.tight_layout()
        fig.savefig(out / "tracking.png")
        plt.close(fig)
        made.append("tracking.png")
    hooks = results.get("hooks", {})
    if hooks.get("one_client"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        names = list(hooks["one_client"])
        axes[0].bar(
            names,
            [statistics.median(r["process_s"] for r in hooks["one_client"][n]) for n in names],
        )
        axes[0].set_title("hook, fresh process, 1 client (s)")
        for charm, by_clients in hooks.get("scale", {}).items():
            counts = sorted(int(c) for c in by_clients)
            axes[1].plot(
                counts,
                [by_clients[c]["steady_reconcile_s"] for c in counts],
                marker="o",
                label=charm,
            )
        axes[1].set_xscale("log")
        axes[1].set_title("steady reconcile vs related clients (s)")
        axes[1].legend()
        fig.tight_layout()
        fig.savefig(out / "hooks.png")
        plt.close(fig)
        made.append("hooks.png")
    return made


def crate_floor(found: dict[str, Any], cratedb_p50_ms: float, postgresql_p50_ms: float) -> str:
    """What is left between CrateDB and PostgreSQL for one log_metric, from the same run.

    The server's Python is the same on both stores; what CrateDB adds is its
    own work (``sys.jobs_log``) and, per statement, the crate client's HTTP
    round trip (a request per statement, JSON both ways). At that cost per
    statement, the statements a log_metric issues set how near the 2x goal
    this design can come.
    """
    server, statements = found["server_ms_per_call"], found["statements_per_call"]
    added = cratedb_p50_ms - postgresql_p50_ms
    if added <= 0:
        return (
            f"CrateDB's log_metric p50 ({cratedb_p50_ms:.1f} ms) is no slower than "
            f"PostgreSQL's ({postgresql_p50_ms:.1f} ms) in this run."
        )
    per_statement = max(added - server, 0.0) / statements
    cost = per_statement + server / statements
    fits = postgresql_p50_ms / cost if cost > 0 else statements
    verdict = (
        "within the goal."
        if fits >= statements
        else "closing the rest takes fewer statements per call (MLflow's store reads the "
        "run and latest_metrics before it writes) or a cheaper round trip (CrateDB's "
        "PostgreSQL wire protocol; the crate:// dialect MLflow runs on speaks HTTP)."
    )
    return (
        f"Against PostgreSQL's {postgresql_p50_ms:.1f} ms (p50, same run) CrateDB adds "
        f"{added:.1f} ms: {server:.1f} ms of its own work and {per_statement:.1f} ms per "
        f"statement besides (the crate client's HTTP round trip, JSON both ways), "
        f"{cost:.1f} ms a statement in all. The 2x goal leaves {postgresql_p50_ms:.1f} ms: "
        f"room for about {fits:.1f} statements at this cost, where a log_metric issues "
        f"{statements:.1f}: {verdict}"
    )


def crate_profile_section(
    profiles: dict[str, Any], tracking: dict[str, Any] | None = None
) -> list[str]:
    """What CrateDB ran for one log_metric through the charm's server (``crate_profile``)."""
    lines: list[str] = []
    postgresql = (tracking or {}).get("postgresql", {})
    for name, found in profiles.items():
        lines += [
            f"## CrateDB: one log_metric through the charm's server ({name})",
            "",
            f"{found['calls']} calls; client p50 {found['client_p50_ms']:.1f} ms, of which "
            f"CrateDB worked {found['server_ms_per_call']:.1f} ms on "
            f"{found['statements_per_call']:.1f} statements (its `sys.jobs_log`); the rest is "
            "the server's Python, the HTTP round trips and the client.",
            "",
            "| statement | per call | CrateDB ms per call |",
            "|---|---|---|",
        ]
        lines += [
            f"| `{kind}` | {k['per_call']:.2f} | {k['ms_per_call']:.1f} |"
            for kind, k in found["by_kind"].items()
        ]
        lines.append("")
        cratedb = (tracking or {}).get("cratedb", {})
        if name in postgresql and name in cratedb and found["statements_per_call"]:
            p50 = "log_metric_p50_ms"
            lines += [crate_floor(found, cratedb[name][p50], postgresql[name][p50]), ""]
    return lines


def _down_vs_raw(artifacts: dict[str, Any], variant: str) -> float | None:
    """The largest size's median download rate of ``variant`` over raw boto3's."""
    if variant not in artifacts or "raw-s3" not in artifacts:
        return None
    size = max(artifacts["raw-s3"])
    if size not in artifacts[variant]:
        return None
    raw = artifacts["raw-s3"][size]["down_mbps"]["median"]
    return float(artifacts[variant][size]["down_mbps"]["median"]) / raw


def which_download(loopback: dict[str, Any], shaped: dict[str, Any]) -> list[str]:
    """Which download figure a user sees, and why the loopback one is lower."""
    figures = {
        (where, variant): _down_vs_raw(artifacts, variant)
        for where, artifacts in (("loopback", loopback), ("shaped", shaped))
        for variant in ("charm-proxied", "charm-direct")
    }
    if any(v is None for v in figures.values()):
        return []

    def both(where: str) -> str:
        return (
            f"{figures[(where, 'charm-proxied')]:.2f}x proxied, "
            f"{figures[(where, 'charm-direct')]:.2f}x direct"
        )

    return [
        "Which download figure a user sees depends on what limits the transfer. On plain loopback "
        f"({both('loopback')} of raw boto3) the notebook's client, MLflow and SeaweedFS "
        "share this machine's 2 cores at hundreds of MB/s, so the figure measures CPU per "
        "byte. Direct mode, where the tracking server carries no byte (the notebook's MLflow "
        "client reads SeaweedFS itself), shows the same gap as proxied: it is the cost of "
        "MLflow's client download path against raw boto3's, not the server's. Where the "
        f"network is the limit both modes keep up with raw boto3 ({both('shaped')} on "
        "the shaped link); a pod network fast enough to make the notebook's CPU the limit "
        "gives the loopback figure.",
        "",
    ]


def shaped_section(
    shaped: dict[str, Any] | None, loopback: dict[str, Any] | None = None
) -> list[str]:
    """The artifact figures on the rate-limited loopback, against raw boto3 there."""
    if not shaped:
        return []
    art = shaped["artifacts"]
    lines = [
        f"## Artifacts on a loopback limited to {shaped['rate']}",
        "",
        "`python -m bench --shaped RATE`: the same artifact runs in a network namespace whose",
        "loopback (every hop: notebook, MLflow, SeaweedFS) shares one token-bucket-limited",
        "link. Proxied downloads cross it twice (SeaweedFS -> MLflow -> notebook).",
        "",
        "| variant | size | up MB/s | down MB/s | up vs raw | down vs raw |",
        "|---|---|---|---|---|---|",
    ]
    for variant, sizes in art.items():
        for size, figures in sorted(sizes.items()):
            raw = art["raw-s3"][size]
            up, down = figures["up_mbps"]["median"], figures["down_mbps"]["median"]
            lines.append(
                f"| {variant} | {size} MB | {up:.0f} | {down:.0f} | "
                f"{up / raw['up_mbps']['median']:.2f}x | {down / raw['down_mbps']['median']:.2f}x |"
            )
    return [*lines, "", *which_download(loopback or {}, art)]


def _normalized(results: dict[str, Any]) -> dict[str, Any]:
    """The results as read back from JSON, with size and client-count keys as ints again."""
    data = json.loads(json.dumps(results, default=str))
    data["artifacts"] = {
        variant: {int(size): figures for size, figures in sizes.items()}
        for variant, sizes in data.get("artifacts", {}).items()
    }
    if "shaped" in data:
        data["shaped"]["artifacts"] = {
            variant: {int(size): figures for size, figures in sizes.items()}
            for variant, sizes in data["shaped"]["artifacts"].items()
        }
    hooks = data.get("hooks", {})
    hooks["scale"] = {
        charm: {int(n): figures for n, figures in by.items()}
        for charm, by in hooks.get("scale", {}).items()
    }
    return data


def write(results: dict[str, Any], out: Path, mode: str) -> Path:
    """results.json, report.md and the charts in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True, default=str))
    results = _normalized(results)
    pictures = charts(results, out)
    lines = [
        "# Benchmark report",
        "",
        f"Mode: {mode}. Machine: {machine()}.",
        "All variants measured in the same run, on loopback, under real Pebble daemons;",
        "figures are medians (min-max in results.json). Raw data: `results.json`.",
        "",
        "| goal | measured | target | met |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {g} | {m} | {t} | {'yes' if ok else '**no**'} |" for g, m, t, ok in goals(results)
    ]
    lines += ["", *[f"![{p}]({p})" for p in pictures], ""]
    if results.get("startup_seaweedfs") or results.get("startup_mlflow"):
        lines += ["## Start-up", "", "| service | fresh | restart |", "|---|---|---|"]
        sw = results.get("startup_seaweedfs")
        if sw:
            lines.append(
                f"| SeaweedFS (S3 answers / checks up) | {sw['fresh_answers_s']:.1f} s / {sw['fresh_checks_s']:.1f} s | {sw['restart_answers_s']:.1f} s |"
            )
        for name, figures in results.get("startup_mlflow", {}).items():
            lines.append(
                f"| MLflow {name} (/health) | {figures['fresh_s']:.1f} s | {figures['restart_s']:.1f} s |"
            )
        lines.append("")
    lines += crate_profile_section(results.get("cratedb_profile") or {}, results.get("tracking"))
    lines += shaped_section(results.get("shaped"), results.get("artifacts"))
    for note in results.get("skipped", []):
        lines.append(f"- skipped: {note}")
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
