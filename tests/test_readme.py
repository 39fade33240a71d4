"""Every command and snippet of README.md is executed here.

What runs, honestly:
- ``python`` blocks run as they are, in a subprocess whose working folder is a scratch folder holding links to
  ``data_manifests/`` and ``analyses/`` (so ``runs/...`` lands in the scratch folder), with the sizes in
  :data:`PY_SMALLER` made smaller (the same calls on fewer images / permutations / steps);
- ``yaml`` blocks are parsed by the loader they document (a manifest, or a run config);
- ``bash`` blocks run line by line (``export`` lines set the environment of the lines after them); each command
  must match a rule of :data:`COMMANDS`, which says what the test runs instead when the command is too slow or
  needs what is not here (weights, a dataset, the network): a new README command without a rule fails the test.
  ``pip install`` and the test command are not run: they are what ``.ci/run`` runs before this test.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
pytestmark = pytest.mark.slow  # minutes in all on 2 cores: every README command runs, on small sizes

#: Python snippets: (pattern, replacement) applied before running (smaller sizes, same calls).
PY_SMALLER = [
    (r"limit=\d+", "limit=256"),
    (r"permutations=\d+", "permutations=10"),
    (r"iterations=\d+", "iterations=3"),
]

#: Settings added to ``tokenprobe demo`` / ``tokenprobe run`` (the same pipeline on fewer images, pairs and steps,
#: validating the two of three that have a measurer).
SMALL_RUN = ["--set", "data.images=256", "--set", "probes.permutations=10", "--set", "swap.pairs=4",
             "--set", "swap.control_pairs=2", "--set", "swap.max_set=2",
             "--set", "data.attributes=[lighting, bg_blur, null_factor]", "--set", "swap.attributes=null",
             "--set", "optimize.iterations=2", "--set", "optimize.images=2"]


def _smaller_flags(argv: list[str]) -> list[str]:
    """Flags of the README's commands made smaller (same command, fewer images / permutations / steps)."""
    small = {"--limit": "256", "--permutations": "10", "--pairs": "4", "--discovery-pairs": "4", "--iterations": "2",
             "--images": "256"}
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a in small:
            out[i + 1] = small[a]
    if out[:1] == ["tokenprobe"] and len(out) > 1 and out[1] == "swap" and "--control-pairs" not in out:
        out += ["--control-pairs", "2", "--no-greedy", "--attributes", "lighting,bg_blur"]
        if "--discovery-pairs" not in out:
            out += ["--discovery-pairs", "4"]
    return out


def _python() -> list[str]:
    return [sys.executable]


def _tokenprobe(argv: list[str]) -> list[str]:
    return [*_python(), "-m", "probe", *argv[1:]]


#: bash commands: (regex on the command, what to do). Actions: "skip:<why>" or a function argv -> (argv to run,
#: expected return code, text the output must contain).
def _demo(argv):
    return _tokenprobe(argv) + SMALL_RUN, 0, "report:"


def _run_demo_config(argv):
    return _tokenprobe(argv) + SMALL_RUN, 0, "report:"


def _run_sprites(argv):
    # the sprites world with sprites-32 (needs the optional idsprites): the same pipeline on fewer images and pairs
    small = ["--set", "data.images=128", "--set", "probes.permutations=10", "--set", "swap.pairs=4",
             "--set", "swap.control_pairs=2", "--set", "swap.max_set=2", "--set", "swap.grids=0",
             "--set", "swap.attributes=[scale, color, contrast]"]
    return _tokenprobe(argv) + small, 0, "of 3 attributes confirmed"  # the swap stage ran (a failed one still reports)


def _run_titok(argv):
    # no TiTok-L-32 weights, ImageNet folder or CLIP weights here: the run must stop before any work and name them
    return _tokenprobe(argv), 2, "missing"


def _plain(argv):
    return _tokenprobe(_smaller_flags(argv)), 0, ""


def _torchrun(argv):
    argv = _smaller_flags(argv)
    i = argv.index("--nproc_per_node")
    argv[i + 1] = "2"
    return [*_python(), "-m", "torch.distributed.run", *argv[1:]], 0, ""


def _bench(argv):
    return [*_python(), "analyses/bench.py", "--only", "world"], 0, "world.sample"


COMMANDS = [
    (r"^pip install", "skip: .ci/run installs the package before the tests"),
    (r"^python -m pytest", "skip: this is the test suite itself"),
    (r"^python3 -m venv|^\. \.venv/bin/activate", "skip: .ci/run makes the environment"),
    (r"^tokenprobe demo", _demo),
    (r"^tokenprobe run analyses/demo\.yaml", _run_demo_config),
    (r"^tokenprobe run analyses/titok-l32-imagenet\.yaml", _run_titok),
    (r"^tokenprobe run analyses/sprites\.yaml", _run_sprites),
    (r"^python analyses/bench_discovery\.py", "skip: hours on 2 cores; tests/test_bench_discovery.py runs a small instance"),
    (r"^bash analyses/sprites/reproduce\.sh", "skip: 105 minutes of training; the sprites run command above runs its pipeline"),
    (r"^tokenprobe (info|tokenize|probe|swap|copy-paste|edit|generate|inpaint)\b", _plain),
    (r"^torchrun ", _torchrun),
    (r"^python analyses/bench\.py", _bench),
]


def blocks(text: str) -> list[tuple[str, str, int]]:
    """``(language, code, line)`` of every fenced block of ``text``."""
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        out.append((m.group(1), m.group(2), text[: m.start()].count("\n") + 1))
    return out


def commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments dropped, ``&&`` chains split."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            out += [c.strip() for c in line.split("&&")]
    return out


README_BLOCKS = blocks(README.read_text()) if README.exists() else []


def _of(lang: str) -> list[tuple[str, str, int]]:
    return [b for b in README_BLOCKS if b[0] == lang]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One working folder for every block, as a reader's checkout: `tokenprobe run analyses/demo.yaml` after
    `tokenprobe demo` reuses the demo's finished stages (the same settings after the test's size flags)."""
    folder = tmp_path_factory.mktemp("readme")
    for name in ("data_manifests", "analyses"):
        (folder / name).symlink_to(ROOT / name)
    return folder


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    env.update(extra or {})
    return env


def test_readme_has_the_sections_the_issue_asks_for():
    text = README.read_text()
    langs = [lang for lang, _, _ in README_BLOCKS]
    assert langs.count("bash") >= 3 and "python" in langs and "yaml" in langs
    for needle in ("tokenprobe demo", "tokenprobe run", "torchrun", "HF_HUB_OFFLINE", "report.html", "Known limits"):
        assert needle in text, needle


@pytest.mark.parametrize("lang,code,line", _of("python"), ids=[f"line{b[2]}" for b in _of("python")])
def test_python_snippet_runs(lang, code, line, scratch):
    for pattern, repl in PY_SMALLER:
        code = re.sub(pattern, repl, code)
    script = scratch / f"snippet_{line}.py"
    script.write_text(code)
    r = subprocess.run([*_python(), str(script)], cwd=scratch, env=_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"README.md line {line}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


@pytest.mark.parametrize("lang,code,line", _of("yaml"), ids=[f"line{b[2]}" for b in _of("yaml")])
def test_yaml_snippet_loads(lang, code, line):
    import yaml

    data = yaml.safe_load(code)
    if "source" in data:  # a manifest
        from probe.data.manifest import manifest_from_dict

        manifest = manifest_from_dict(data, where=f"README.md line {line}")
        assert manifest.attribute_names
    else:  # a run config
        from probe.pipeline import RunConfig

        RunConfig.from_dict(data, where=f"README.md line {line}")


@pytest.mark.parametrize("lang,code,line", _of("bash"), ids=[f"line{b[2]}" for b in _of("bash")])
def test_shell_commands_run(lang, code, line, scratch):
    extra: dict[str, str] = {}
    for cmd in commands(code):
        if cmd.startswith("export "):
            for item in shlex.split(cmd)[1:]:
                k, _, v = item.partition("=")
                extra[k] = v
            continue
        rule = next((action for pattern, action in COMMANDS if re.search(pattern, cmd)), None)
        assert rule is not None, f"README.md line {line}: no rule in tests/test_readme.py COMMANDS for {cmd!r}"
        if isinstance(rule, str):
            continue  # "skip: why"
        argv, rc, must = rule(shlex.split(cmd))
        r = subprocess.run(argv, cwd=scratch, env=_env(extra), capture_output=True, text=True, timeout=900)
        out = r.stdout + r.stderr
        assert r.returncode == rc, f"README.md line {line}: {cmd!r} ran as {argv} -> {r.returncode}\n{out[-3000:]}"
        assert must in out, f"README.md line {line}: {cmd!r}: {must!r} not in its output\n{out[-3000:]}"
