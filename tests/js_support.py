"""Running the node scripts of tests/js (matrix-js-sdk, and playwright-core driving Debian's
headless Chromium), which `scripts/test` installs with `npm ci`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

JS_DIR = os.path.join(os.path.dirname(__file__), "js")


def node_with(module: str) -> str:
    """The node binary, once node and the npm module are installed (else the test fails
    saying how to install them)."""
    node = shutil.which("node")
    assert node and os.path.isdir(os.path.join(JS_DIR, "node_modules", module)), \
        f"node and {module} are needed: run scripts/test (it runs npm ci in tests/js)"
    return node


def chromium_node() -> str:
    """The node binary, once playwright-core and Debian's chromium are installed."""
    assert os.path.exists("/usr/bin/chromium"), "Debian's chromium is needed: run scripts/test (apt)"
    return node_with("playwright-core")


async def next_record(process: asyncio.subprocess.Process, wanted, timeout: float = 20) -> dict:
    """Read JSON lines from a running script until one satisfies `wanted` (other output is
    skipped); fails with the end of its error output if the script ends first."""
    async def read():
        while True:
            line = await process.stdout.readline()
            if not line:
                raise AssertionError(f"the script ended: {(await process.stderr.read()).decode()[-3000:]}")
            if line.startswith(b"{"):
                record = json.loads(line)
                if wanted(record):
                    return record

    return await asyncio.wait_for(read(), timeout)


async def page_script_steps(script: str, *args: str, timeout: float = 90) -> dict[str, dict]:
    """Run a page script of tests/js (one that drives Chromium) to its end: see `script_steps`."""
    return await script_steps(chromium_node(), script, *args, timeout=timeout)


async def script_steps(node: str, script: str, *args: str, timeout: float = 90) -> dict[str, dict]:
    """Run a node script of tests/js to its end; its JSON lines by `step`. The script must
    have exited 0 and said `done`, else the test fails with the end of its error output."""
    process = await asyncio.create_subprocess_exec(
        node, os.path.join(JS_DIR, script), *args,
        cwd=JS_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    records = (json.loads(line) for line in out.decode().splitlines() if line.startswith("{"))
    steps = {record["step"]: record for record in records if "step" in record}
    assert process.returncode == 0 and "done" in steps, err.decode()[-3000:]
    return steps
