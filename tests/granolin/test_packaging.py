"""The granolin distribution: built from packaging/granolin, it holds granolin alone and needs only aiohttp
(vodozemac and cryptography with its e2e extra)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

WITHOUT_RANVIER = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, sys.argv[1])
    for name in ("ranvier", "orjson", "vodozemac", "cryptography"):
        sys.modules[name] = None  # as in an environment where only the granolin distribution is installed
    import granolin, granolin.testing
    assert granolin.__file__.startswith(sys.argv[1]), granolin.__file__
    assert granolin.Client("https://hs.example.org", hardcopy=None).encryption is None  # no e2e extra: no encryption
    try:
        asyncio.run(granolin.testing.TestHomeserver(use_environment=False).__aenter__())
    except granolin.testing.RanvierMissingError as error:
        print(error)
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the two folders it needs (the work tree stays clean)."""
    tree = tmp_path_factory.mktemp("tree")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(REPOSITORY / "packaging" / "granolin", tree / "packaging" / "granolin", ignore=ignore)
    shutil.copytree(REPOSITORY / "src" / "granolin", tree / "src" / "granolin", ignore=ignore)
    out = tree / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(tree / "packaging" / "granolin")],
                   check=True, timeout=300)
    (built,) = out.glob("granolin-*.whl")
    return built


def test_the_wheel_holds_granolin_alone(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    modules = {path.relative_to(REPOSITORY / "src").as_posix() for path in (REPOSITORY / "src" / "granolin").rglob("*.py")}
    assert "granolin/e2ee/machine.py" in modules and modules <= set(names) and "granolin/py.typed" in names
    assert all(name.startswith(("granolin/", "granolin-")) for name in names), names
    assert metadata["Name"] == "granolin"
    assert metadata.get_all("Requires-Dist") == ["aiohttp>=3.9", 'vodozemac>=0.10; extra == "e2e"', 'cryptography>=42; extra == "e2e"']
    assert metadata.get_all("Provides-Extra") == ["e2e"]


def test_it_runs_without_ranvier_and_says_what_testing_needs(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    result = subprocess.run([sys.executable, "-c", WITHOUT_RANVIER, str(tmp_path / "site")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ranvier is not installed" in result.stdout and "GRANOLIN_TEST_HOMESERVER" in result.stdout
