"""Benchmarks ranvier against Synapse, and against a do-nothing ceiling, through the public
client-server API on this machine.

    python bench/run.py --quick        smoke run, one round, small counts
    python bench/run.py                3 rounds of everything (about 20 minutes)

Each round starts every server fresh, on each database, one after the other (A B A B), and
runs the selected scenarios; the table shows medians over the rounds. Results are written
to bench/results/. See bench/README.md for what each figure means.
"""

import argparse
import functools
import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop

import servers
from measure import machine, pss_bytes
from report import markdown_table
from scenarios import FULL, OPT_IN_SCENARIOS, QUICK, SCENARIOS, run_scenarios

SERVERS = ("ranvier", "synapse", "ceiling")
DATABASES = ("sqlite", "postgresql")
ALL_SCENARIOS = ("startup", "memory", *SCENARIOS)
DEFAULT_SCENARIOS = [s for s in ALL_SCENARIOS if s not in OPT_IN_SCENARIOS]
CEILING_SCENARIOS = ("startup", "memory", "send", "send_shared", "delivery", "delivery_sustained", "delivery_fanout")
RESULTS = servers.BENCH / "results"


def choices(allowed):
    """An argparse type for a comma-separated subset of `allowed`, kept in the given order."""

    def parse(text):
        picked = [x.strip() for x in text.split(",") if x.strip()]
        unknown = [x for x in picked if x not in allowed]
        if unknown or not picked:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}")
        return picked

    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--servers", type=choices(SERVERS), default=list(SERVERS))
    parser.add_argument("--databases", type=choices(DATABASES), default=list(DATABASES))
    parser.add_argument("--scenarios", type=choices(ALL_SCENARIOS), default=DEFAULT_SCENARIOS,
                        help=f"default all but {','.join(OPT_IN_SCENARIOS)}")
    parser.add_argument("--rounds", type=int, default=None, help="default 3, or 1 with --quick")
    parser.add_argument("--quick", action="store_true", help="smaller counts for a smoke run")
    parser.add_argument("--keep", action="store_true",
                        help="keep the servers' data and logs (the folder is printed)")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


def say(text):
    print(text, file=sys.stderr, flush=True)


def run_server(name, database, round_no, args, ctx):
    """Starts one server fresh, measures it, stops it; returns one record per scenario."""
    counts = QUICK if args.quick else FULL
    wanted = [s for s in args.scenarios if name != "ceiling" or s in CEILING_SCENARIOS]
    records = []

    def report(scenario, status, reason, metrics):
        if status == "failed" and server and not server.alive():
            reason += f" (the server had exited with code {server.proc.returncode})"
        records.append({"round": round_no, "database": None if name == "ceiling" else database,
                        "server": name, "scenario": scenario, "status": status,
                        "reason": reason, "metrics": metrics})
        shown = ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()) or reason
        say(f"  round {round_no} {database:<10} {name:<8} {scenario:<16} {shown}")

    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-{database}-{round_no}-", dir=ctx["work"]))
    port = servers.free_port()
    pg = ctx.get("postgres") if database == "postgresql" and name != "ceiling" else None
    db = None
    server = None
    try:
        try:
            if pg:
                db = pg.start()
            if name == "ranvier":
                argv = servers.ranvier(workdir, port, db)
            elif name == "synapse":
                argv = servers.synapse(workdir, port, db, ctx["signing_key"])
            else:
                argv = servers.ceiling(workdir, port)
            server = servers.Server(argv, workdir, port, pg.pids if pg else list)
            if name in servers.PUSH_TABLES:
                tables = servers.PUSH_TABLES[name]
                server.push_table_bytes = (functools.partial(pg.table_bytes, db["name"], tables) if pg else
                                           functools.partial(servers.sqlite_table_bytes,
                                                             workdir / servers.SQLITE_FILES[name], tables))
            startup = server.start()
        except (servers.StartFailed, OSError) as e:
            for scenario in wanted:
                report(scenario, "not served", f"did not start: {e}", {})
            return records
        if "startup" in wanted:
            report("startup", "ok", "", {"seconds": startup})
        time.sleep(1)  # let start-up work finish before calling the server idle
        idle = pss_bytes(server.pids())
        load = [s for s in wanted if s in SCENARIOS]
        loaded = []

        def measure_loaded():
            if load and server.alive() and not loaded:
                loaded.append(pss_bytes(server.pids()))

        uvloop.run(run_scenarios(server.url, load, counts, server, report, before_restarts=measure_loaded))
        measure_loaded()  # when no scenario restarted the server
        if "memory" in wanted:
            memory = {"idle_mib": idle / 2**20}
            if loaded:
                memory["loaded_mib"] = loaded[0] / 2**20
            report("memory", "ok", "", memory)
    finally:
        if server:
            server.stop()
        if pg:
            pg.stop()
    return records


def describe(args, ctx):
    """Where and with what the figures were measured."""
    try:
        ranvier = importlib.metadata.version("ranvier")
    except importlib.metadata.PackageNotFoundError:
        ranvier = None
    commit = subprocess.run(["git", "-C", str(servers.BENCH), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "versions": {
            "python": platform.python_version(),
            "synapse": ctx.get("synapse_version"),
            "ranvier": ranvier,
            "ranvier_commit": commit or None,
            "aiohttp": aiohttp.__version__,
            "postgresql": ctx["postgres"].version() if ctx.get("postgres") else None,
        },
        "options": {"servers": args.servers, "databases": args.databases,
                    "scenarios": args.scenarios, "rounds": args.rounds, "quick": args.quick},
        "counts": (QUICK if args.quick else FULL).labels(),
    }


def markdown(info, table):
    m, v = info["machine"], info["versions"]
    ranvier = f"ranvier {v['ranvier']}" + (f" ({v['ranvier_commit']})" if v["ranvier_commit"] else "")
    lines = [
        f"Benchmark of {info['date']}, {info['options']['rounds']} round(s)"
        + (", --quick" if info["options"]["quick"] else ""),
        f"on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {v['python']}, "
        f"{ranvier}, Synapse {v['synapse'] or '-'}, {v['postgresql'] or 'no PostgreSQL'}.",
        "",
        table,
        "",
        "Medians over rounds. ↑ higher is better, ↓ lower is better; ratio = ranvier / Synapse. "
        "The load generator shares the machine's cores with the server.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    ctx = {"work": Path(tempfile.mkdtemp(prefix="ranvier-bench-"))}
    ctx["work"].chmod(0o755)  # the PostgreSQL user must reach its cluster inside
    records = []
    try:
        if "ranvier" in args.servers:
            servers.compile_ranvier()
        if "synapse" in args.servers:
            ctx["synapse_version"] = servers.ensure_synapse()
            ctx["signing_key"] = servers.synapse_signing_key(ctx["work"])
        if "postgresql" in args.databases and set(args.servers) - {"ceiling"}:
            ctx["postgres"] = servers.Postgres(ctx["work"])
        for round_no in range(1, args.rounds + 1):
            for database in args.databases:
                for name in args.servers:
                    if name == "ceiling" and database != args.databases[0]:
                        continue  # the ceiling has no database: once per round is enough
                    records += run_server(name, database, round_no, args, ctx)
        info = describe(args, ctx)
    finally:
        if args.keep:
            say(f"data and logs kept in {ctx['work']}")
        else:
            shutil.rmtree(ctx["work"], ignore_errors=True)
    table = markdown_table(records, args.servers, args.databases, info["counts"])
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    (RESULTS / f"{stamp}.json").write_text(json.dumps({**info, "records": records}, indent=1))
    text = markdown(info, table)
    (RESULTS / f"{stamp}.md").write_text(text)
    print(text)
    say(f"written to {RESULTS / stamp}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
