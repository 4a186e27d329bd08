"""`dvr lab env` (shell exports of the lab's API and admin token) and the lab's secret files."""

from __future__ import annotations

import os
import stat
import subprocess

from dvr.cli.main import main
from dvr.lab.cli import env_exports
from dvr.lab.lab import Lab
from dvr.lab.procs import process_ref
from dvr.lab.state import LabPaths, LabRecord, write_private_file

TOKEN = "k3Y_-x" * 7


def test_env_exports_set_what_openstack_and_dvr_read_when_evaluated():
    text = env_exports("http://127.0.0.1:9797", TOKEN)
    assert all(line.startswith("export ") for line in text.splitlines())
    shown = subprocess.run(
        ["bash", "-c", 'eval "$1"; env', "env", text], capture_output=True, text=True,
        check=True, env={"PATH": os.environ["PATH"]}).stdout.splitlines()
    assert {line for line in shown if line.startswith(("OS_", "DVR_"))} == {
        "OS_AUTH_TYPE=admin_token", f"OS_TOKEN={TOKEN}", "OS_ENDPOINT=http://127.0.0.1:9797",
        "DVR_SERVER=http://127.0.0.1:9797", f"DVR_TOKEN={TOKEN}"}


def test_env_exports_quote_what_the_shell_would_expand():
    text = env_exports("http://127.0.0.1:9696", "a b$(echo pwned)")
    shown = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DVR_TOKEN"', "env", text],
                           capture_output=True, text=True, check=True).stdout
    assert shown == "a b$(echo pwned)"


def test_lab_env_prints_the_running_labs_exports(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DVR_LAB_ROOT", str(tmp_path))
    paths = LabPaths.for_lab("envlab", tmp_path)
    paths.save(LabRecord(name="envlab", api_port=9797, computes=2,
                         server=process_ref(os.getpid()).as_dict(), complete=True))
    assert main(["lab", "env", "--name", "envlab"]) == 1
    assert "no admin token" in capsys.readouterr().err
    write_private_file(paths.admin_token, TOKEN + "\n")
    assert main(["lab", "env", "--name", "envlab"]) == 0
    assert capsys.readouterr().out == env_exports("http://127.0.0.1:9797", TOKEN)
    assert main(["lab", "env", "--name", "nolab"]) == 1
    assert "not up" in capsys.readouterr().err


def test_private_files_are_mode_0600_even_when_they_existed(tmp_path):
    path = tmp_path / "hosts" / "compute-1" / "agent.toml"
    path.parent.mkdir(parents=True)
    path.write_text("old")
    path.chmod(0o644)
    write_private_file(path, "token = 'x'\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "token = 'x'\n"
    fresh = tmp_path / "fresh"
    write_private_file(fresh, "y")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_lab_admin_token_is_read_from_its_state_dir(tmp_path):
    lab = Lab("tok", base=tmp_path)
    assert lab.admin_token() is None
    write_private_file(lab.paths.admin_token, f"{TOKEN}\n")
    assert lab.admin_token() == TOKEN
