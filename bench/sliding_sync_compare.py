"""Runs the Element X-like sliding sync script (sliding_client.py) against ranvier and
Synapse, each started fresh, and reports where their transcripts differ.

    python bench/sliding_sync_compare.py                       both servers, SQLite
    python bench/sliding_sync_compare.py --databases sqlite,postgresql

Each server first has to advertise `org.matrix.simplified_msc3575` in /versions. The
transcripts list what the client saw, in order, by room and user names; the report shows
each server's transcript where they differ (a unified diff), or says they agree. The exit
status is 0 when every run agrees with the first one, 1 otherwise.
"""

import argparse
import asyncio
import difflib
import shutil
import sys
import tempfile
from pathlib import Path

import aiohttp

import servers
from scenarios import Api
from sliding_client import new_bench, run_script

FEATURE = "org.matrix.simplified_msc3575"
SERVERS = ("ranvier", "synapse")


async def transcript_of(url):
    """What the script observed; a failure ends it with ("failed", reason)."""
    transcript = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        api = Api(session, url)
        try:
            versions = await api.call("GET /versions", "GET", "/_matrix/client/versions")
            if not versions.get("unstable_features", {}).get(FEATURE):
                transcript.append(("does not advertise", FEATURE))
            await run_script(new_bench(api), transcript)
        except Exception as e:  # a failure is a finding: it ends the transcript
            transcript.append(("failed", f"{type(e).__name__}: {e}"))
    return transcript


def run_one(name, database, work, ctx):
    """Starts one server fresh, runs the script against it, stops it."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-{database}-", dir=work))
    port = servers.free_port()
    pg = ctx.get("postgres") if database == "postgresql" else None
    server = None
    try:
        db = pg.start() if pg else None
        if name == "ranvier":
            argv = servers.ranvier(workdir, port, db)
        else:
            argv = servers.synapse(workdir, port, db, ctx["signing_key"])
        server = servers.Server(argv, workdir, port, pg.pids if pg else list)
        server.start()
        return asyncio.run(transcript_of(server.url))
    except (servers.StartFailed, OSError) as e:
        return [("did not start", str(e))]
    finally:
        if server:
            server.stop()
        if pg:
            pg.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite", help="sqlite, postgresql or both, comma-separated")
    args = parser.parse_args(argv)
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    work = Path(tempfile.mkdtemp(prefix="ranvier-sliding-compare-"))
    work.chmod(0o755)  # the PostgreSQL user must reach its cluster inside
    ctx = {}
    results = {}
    try:
        servers.compile_ranvier()
        print(f"Synapse {servers.ensure_synapse()}", file=sys.stderr)
        ctx["signing_key"] = servers.synapse_signing_key(work)
        if "postgresql" in databases:
            ctx["postgres"] = servers.Postgres(work)
        for database in databases:
            for name in SERVERS:
                print(f"running the script against {name} ({database})", file=sys.stderr)
                results[(name, database)] = run_one(name, database, work, ctx)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference_key = next(iter(results))
    reference = [repr(o) for o in results[reference_key]]
    agree = True
    for key, transcript in results.items():
        lines = [repr(o) for o in transcript]
        label = f"{key[0]} ({key[1]})"
        if key == reference_key:
            print(f"{label}: {len(lines)} observations")
            continue
        diff = list(difflib.unified_diff(reference, lines, f"{reference_key[0]} ({reference_key[1]})", label,
                                         lineterm="", n=1))
        if diff:
            agree = False
            print(f"{label}: differs")
            print("\n".join(diff))
        else:
            print(f"{label}: the same {len(lines)} observations")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
