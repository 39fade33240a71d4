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


def test_train_tokenizer_flags_override_the_config_file(tmp_path):
    """`tokenprobe train-tokenizer`: TrainConfig defaults, then --config, then the flags (model fields included)."""
    import json

    from probe.commands.train_tokenizer import build_config

    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"model": {"patch_size": 8, "codebook_size": 256}, "w_object": 2.0, "lr": 1e-3}))
    parser = build_parser()
    args = parser.parse_args(["train-tokenizer", "--out", str(tmp_path / "run"), "--config", str(cfg_file),
                              "--codebook", "1024", "--dec-patch", "4", "--w-object", "6", "--w-adversarial", "0.1",
                              "--adv-start-step", "300", "--continuous"])
    cfg = build_config(args)
    assert cfg.model == {"patch_size": 8, "codebook_size": 1024, "dec_patch_size": 4, "quantize": False}
    assert (cfg.w_object, cfg.w_adversarial, cfg.adv_start_step, cfg.lr) == (6.0, 0.1, 300, 1e-3)
    model_cfg = cfg.model_config()
    assert (model_cfg.dec_grid, model_cfg.grid) == (8, 4)
