"""The command-line front end: discovery of sub-commands, help, and `python -m probe`."""
import subprocess
import sys

from probe.cli import build_parser, main


def test_every_command_module_is_registered_with_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set(sub.choices)
    assert "info" in names
    for name, p in sub.choices.items():
        assert p.description, f"command {name!r} has no description"


def test_info_runs(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "tokenprobe" in out and "device: cpu" in out


def test_python_dash_m_probe_matches_console_script():
    res = subprocess.run([sys.executable, "-m", "probe", "--help"], capture_output=True, text=True, check=True)
    assert "info" in res.stdout
