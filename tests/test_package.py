"""The program as a campus server gets it: a wheel built with the declared build
requirements, installed into a fresh venv with no clone and no test tooling."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from conftest import clean_env

ROOT = Path(__file__).parent.parent


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=clean_env())


def test_a_built_wheel_installs_the_command_the_unit_and_the_example(tmp_path: Path) -> None:
    built = run(sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path / "dist",
                ROOT, cwd=tmp_path)  # isolated: setuptools as pyproject.toml declares it
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("officehours_daemon-*.whl")
    # the runtime alone: no emulator, seeding, cluster or drill code, no test double
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if "sandbox" in n or n.endswith("memory.py")] == [], names
    assert all(n.startswith(("daemon/", "officehours_daemon-")) for n in names), names
    venv.create(tmp_path / "venv")  # no pip of its own: ours installs into it
    bin_dir = tmp_path / "venv" / "bin"
    pip = (sys.executable, "-m", "pip", "--python", bin_dir / "python",
           "--disable-pip-version-check")
    installed = run(*pip, "install", "--quiet", "--no-compile", wheel)  # no bytecode: faster
    assert installed.returncode == 0, installed.stderr
    packages = run(*pip, "list", "--format=freeze").stdout.lower()
    assert "\nhttpx==" in "\n" + packages, packages  # the fresh venv's list, not ours
    for tooling in ("pytest", "trustme", "jsonschema", "hypothesis", "mypy", "freezegun"):
        assert f"\n{tooling}==" not in "\n" + packages, f"{tooling} is a runtime dependency"

    officehours = bin_dir / "officehours"
    example = run(officehours, "example-config")
    assert example.returncode == 0 and example.stdout == (ROOT / "config.example.toml").read_text()
    config = tmp_path / "config.toml"
    config.write_text(example.stdout.replace("\"...\"", "\"filled-in\""))
    unit = run(officehours, "--config", config, "unit")
    assert unit.returncode == 0, unit.stderr
    assert f"ExecStart={officehours} --config {config} run" in unit.stdout
    assert "LoadCredential=zoom-secret:/etc/officehours/credentials/zoom-secret" in unit.stdout
    demo = run(officehours, "demo")
    assert demo.returncode == 1 and "officehours-sandbox package" in demo.stderr
    assert "make demo" in demo.stderr
    assert "Traceback" not in demo.stderr
