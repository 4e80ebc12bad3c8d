"""A longer schemathesis pass than the test suite's: every operation of the spec's
client-server OpenAPI that ranvier serves, with many more generated requests each, against
a real `ranvier serve` on SQLite and on PostgreSQL (tests/integration/test_openapi_fuzz.py,
whose checks are: no 5xx, and every response as the spec's schema for its status says).

    python bench/fuzz.py                      200 examples per operation, both engines
    python bench/fuzz.py --examples 1000 -k sqlite

Arguments after the options go to pytest (-k to choose operations or an engine, -x to
stop at the first failure). It takes minutes; the suite's pass takes about one.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--examples", type=int, default=200, help="generated requests per operation (default 200)")
    args, pytest_args = parser.parse_known_args(argv)
    environment = {**os.environ, "FUZZ_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "tests/integration/test_openapi_fuzz.py", "-q", "-p", "no:cacheprovider",
               "-o", "timeout=3600", *pytest_args]
    return subprocess.call(command, cwd=ROOT, env=environment)


if __name__ == "__main__":
    sys.exit(main())
