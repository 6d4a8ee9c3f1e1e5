"""The command line under hostile input and faults (issue 15), run as users run it.

Exit codes, as the README promises: 0 every input scored; 1 some input unreadable
(one line each on stderr, the others scored); 2 bad model, arguments or output; 3 an
internal error (a bug: one line, the traceback with ``-vv``); 130 interrupted; 141
when the reader of standard output went away. Nothing read from a file name or a file
reaches the terminal unescaped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfakedetect import ConfigError, Detector, detect_many

from hostile_helpers import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    child_env,
    make_fifo,
    one_line_error,
    run_cli,
    run_python,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    return Detector.from_backbone("resnet18", input_size=32, device="cpu").save_pretrained(folder)


@pytest.fixture(scope="module")
def model(model_dir: Path) -> Detector:
    return Detector.from_pretrained(model_dir, device="cpu")


def _images(folder: Path, n: int, size: int = 36) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    paths = []
    for i in range(n):
        p = folder / f"img_{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    return _images(tmp_path / "one", 1)[0]


# -- exit codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ["--aggregator", "no_such_aggregator"],
        ["--aggregator", "top_k_mean:k=-1"],
        ["--sampler", "no_such_sampler"],
        ["--sampler", "uniform:num_frames=" + "not " * 5000 + "1"],
        ["--threshold", "2"],
        ["--threshold", "nan"],
        ["--batch-size", "0"],
        ["--batch-size", "-1"],
        ["--timeout", "0"],
        ["--timeout", "-5"],
        ["--timeout", "nan"],
    ],
    ids=lambda a: " ".join(a)[:40],
)
@pytest.mark.parametrize("many", [False, True], ids=["file", "folder"])
def test_bad_arguments_exit_2_for_a_file_and_for_a_folder(
    model_dir: Path, photo: Path, extra: list[str], many: bool
) -> None:
    target = str(photo.parent) if many else str(photo)
    done = run_cli(["detect", target, "--model", str(model_dir), "--no-progress", *extra])
    assert done.returncode == EXIT_USAGE, done.stderr
    one_line_error(done.stderr)
    assert done.stdout == ""  # refused before anything was scored


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_device_cuda_without_a_gpu_exits_2(model_dir: Path, photo: Path) -> None:
    done = run_cli(["detect", str(photo), "--model", str(model_dir), "--device", "cuda"])
    assert done.returncode == EXIT_USAGE
    one_line_error(done.stderr)
    assert "CUDA" in done.stderr


def test_some_unreadable_inputs_exit_1_and_the_rest_are_scored(model_dir: Path, tmp_path: Path) -> None:
    good = _images(tmp_path / "d", 2)
    (tmp_path / "d" / "bad.jpg").write_bytes(b"not a jpeg")
    done = run_cli(["detect", *map(str, good), str(tmp_path / "d" / "bad.jpg"), "--model", str(model_dir)])
    assert done.returncode == EXIT_SOME_FAILED
    assert len(done.stdout.splitlines()) == 2
    one_line_error(done.stderr)


_CRASH = """
import sys
from deepfakedetect import Detector
from deepfakedetect.cli import main

def boom(self, *args, **kwargs):
    raise ZeroDivisionError("a bug, not a bad input")

Detector.detect_image = boom
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_an_internal_error_has_its_own_exit_code(model_dir: Path, photo: Path, tmp_path: Path, verbose: bool) -> None:
    script = tmp_path / "crash.py"
    script.write_text(_CRASH)
    args = [sys.executable, str(script), *(["-vv"] if verbose else []), "detect", str(photo), "--model", str(model_dir)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=child_env(), stdin=subprocess.DEVNULL)
    assert done.returncode == EXIT_INTERNAL, done.stderr
    assert "internal error" in done.stderr and "ZeroDivisionError" in done.stderr
    # The traceback only when asked for.
    assert ("Traceback" in done.stderr) == verbose


# -- output faults ----------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_output_to_a_full_disk_is_a_one_line_error(model_dir: Path, tmp_path: Path) -> None:
    _images(tmp_path / "d", 3)
    done = run_cli(["detect", str(tmp_path / "d"), "--model", str(model_dir), "--output", "/dev/full", "--no-progress"])
    assert done.returncode == EXIT_USAGE, done.stderr
    one_line_error(done.stderr)
    assert "/dev/full" in done.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_standard_output_on_a_full_disk_is_a_one_line_error(model_dir: Path, photo: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "deepfakedetect", "detect", str(photo), "--model", str(model_dir)],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, env=child_env(), stdin=subprocess.DEVNULL,
        )
    assert done.returncode == EXIT_USAGE, done.stderr
    one_line_error(done.stderr)
    assert "standard output" in done.stderr


def test_a_reader_that_goes_away_is_not_a_traceback(model_dir: Path, tmp_path: Path) -> None:
    _images(tmp_path / "d", 40)
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepfakedetect", "detect", str(tmp_path / "d"), "--model", str(model_dir),
         "--no-progress", "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    try:
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the CLI kept running after its reader went away")
    assert first.strip()
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert code == 141


# -- names that try to forge output ----------------------------------------------------------


HOSTILE_NAMES = [
    "a\nfake_000.png\treal\tfake_score=0.0000\nb.png",
    "esc\x1b[2Jclear.png",
    "cr\rover.png",
    "bell\x07.png",
    "rtl\u202egnp.png",
    "ls\u2028sep.png",
]


@pytest.mark.skipif(sys.platform == "win32", reason="these names are POSIX-only")
def test_file_names_cannot_forge_or_break_text_output(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    for name in HOSTILE_NAMES:
        Image.new("RGB", (36, 36), "gray").save(folder / name, format="PNG")
    (folder / "bad\nname.jpg").write_bytes(b"not a jpeg")
    for args in (["detect", str(folder)], ["detect", *sorted(str(p) for p in folder.iterdir())]):
        done = run_cli([*args, "--model", str(model_dir), "--no-progress"])
        assert done.returncode == EXIT_SOME_FAILED, done.stderr
        lines = done.stdout.split("\n")
        assert lines[-1] == "" and len(lines) - 1 == len(HOSTILE_NAMES), done.stdout
        for line in lines[:-1]:
            assert line.count("\t") == 2, repr(line)
            assert not any(ord(c) < 32 and c != "\t" for c in line), repr(line)
            assert "\u202e" not in line and "\u2028" not in line and "\x1b" not in line
        err_lines = [ln for ln in done.stderr.split("\n") if ln]
        assert len(err_lines) == 1 and "bad\\nname.jpg" in err_lines[0], done.stderr


def test_json_output_round_trips_hostile_names(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    name = "q\"uote\nnl.png"
    Image.new("RGB", (36, 36), "gray").save(folder / name, format="PNG")
    done = run_cli(["detect", str(folder), "--model", str(model_dir), "--json", "--no-progress"])
    assert done.returncode == EXIT_OK, done.stderr
    (line,) = done.stdout.splitlines()
    assert Path(json.loads(line)["source"]).name == name


# -- results never lost or doubled ---------------------------------------------------------------


def test_resume_matches_inputs_by_resolved_path(model_dir: Path, tmp_path: Path) -> None:
    _images(tmp_path / "d", 5)
    out = tmp_path / "r.jsonl"
    first = run_cli(["detect", "d", "--model", str(model_dir), "--output", str(out), "--no-progress"], cwd=tmp_path)
    assert first.returncode == EXIT_OK, first.stderr
    again = run_cli(
        ["detect", "./d", "--model", str(model_dir), "--output", str(out), "--resume", "--no-progress"], cwd=tmp_path
    )
    assert again.returncode == EXIT_OK, again.stderr
    # Relative sources are resolved against the current folder (documented): an absolute
    # spelling matches them when the run resumes from the same folder.
    also = run_cli(
        ["detect", str(tmp_path / "d"), "--model", str(model_dir), "--output", str(out), "--resume", "--no-progress"],
        cwd=tmp_path,
    )
    assert also.returncode == EXIT_OK, also.stderr
    assert len(out.read_text().splitlines()) == 5


def test_a_second_writer_of_the_same_output_is_refused(model: Detector, model_dir: Path, tmp_path: Path) -> None:
    paths = _images(tmp_path / "d", 6)
    out = tmp_path / "r.jsonl"
    running = detect_many(model, tmp_path / "d", output=out, progress=False)  # holds the output from here on
    try:
        with pytest.raises(ConfigError, match="another"):
            detect_many(model, tmp_path / "d", output=out, resume=True, progress=False)
        other = run_cli(["detect", str(tmp_path / "d"), "--model", str(model_dir), "--output", str(out), "--resume"])
        assert other.returncode == EXIT_USAGE and "another" in other.stderr, other.stderr
        one_line_error(other.stderr)
        records = list(running)
    finally:
        running.close()
    assert len(records) == len(paths)
    lines = out.read_text().splitlines()
    assert len(lines) == len(paths) and all(json.loads(ln)["status"] == "ok" for ln in lines)
    # Once the first run is done the file is free again.
    assert list(detect_many(model, tmp_path / "d", output=out, resume=True, progress=False)) == []


def test_resume_skips_broken_lines_with_a_warning(model_dir: Path, tmp_path: Path) -> None:
    paths = _images(tmp_path / "d", 4)
    out = tmp_path / "r.jsonl"
    good = json.dumps({"source": str(paths[0]), "status": "ok", "fake_score": 0.5, "label": "fake"})
    out.write_text(
        good + "\n" + '{"source": "x", "status"' + "\n" + "\x1b[2J garbage\n" + good + good + "\n" + "[1, 2]\n"
    )
    done = run_cli(["detect", str(tmp_path / "d"), "--model", str(model_dir), "--output", str(out), "--resume",
                    "--no-progress"])  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    assert "Traceback" not in done.stderr and "\x1b" not in done.stderr
    assert "line 2" in done.stderr and "line 3" in done.stderr  # each broken line is named
    sources = []
    for line in out.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            sources.append(rec["source"])
    assert sorted(sources) == sorted(map(str, paths))  # each input recorded once


def test_existing_output_needs_resume_or_overwrite(model_dir: Path, tmp_path: Path) -> None:
    _images(tmp_path / "d", 3)
    out = tmp_path / "r.jsonl"
    out.write_text('{"source": "old", "status": "ok"}\n')
    refused = run_cli(["detect", str(tmp_path / "d"), "--model", str(model_dir), "--output", str(out)])
    assert refused.returncode == EXIT_USAGE
    assert "--overwrite" in refused.stderr and "overwrite=True" not in refused.stderr
    done = run_cli(["detect", str(tmp_path / "d"), "--model", str(model_dir), "--output", str(out), "--overwrite",
                    "--no-progress"])  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    assert len(out.read_text().splitlines()) == 3 and '"source": "old"' not in out.read_text()
    both = run_cli(["detect", str(tmp_path / "d"), "--model", str(model_dir), "--output", str(out), "--overwrite",
                    "--resume"])  # fmt: skip
    assert both.returncode == EXIT_USAGE


def _train_args(data: Path, out: Path) -> list[str]:
    return [
        "train", str(data), "--out", str(out), "--backbone", "resnet18", "--weights", "none", "--epochs", "1",
        "--batch-size", "4", "--input-size", "32", "--no-progress", "--cache", "none", "--no-augment",
        "--no-calibrate", "--device", "cpu",
    ]  # fmt: skip


def test_train_refuses_an_existing_model_folder_unless_told(model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for label in ("real", "fake"):
        (data / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(data / label / f"{i}.png")
    out = tmp_path / "existing"
    import shutil

    shutil.copytree(model_dir, out)
    before = (out / "model.safetensors").read_bytes()
    refused = run_cli(_train_args(data, out), timeout=300)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    one_line_error(refused.stderr)
    assert "--overwrite" in refused.stderr
    assert (out / "model.safetensors").read_bytes() == before
    done = run_cli([*_train_args(data, out), "--overwrite"], timeout=300)
    assert done.returncode == EXIT_OK, done.stderr
    assert (out / "model.safetensors").read_bytes() != before
    # A fresh folder needs no flag, and --resume continues a folder's run without one.
    assert run_cli(_train_args(data, tmp_path / "fresh"), timeout=300).returncode == EXIT_OK
    assert run_cli([*_train_args(data, tmp_path / "fresh"), "--resume"], timeout=300).returncode == EXIT_OK


# -- inputs that block ----------------------------------------------------------------------------


def test_a_fifo_among_the_inputs_is_an_error_line_not_a_hang(model_dir: Path, tmp_path: Path) -> None:
    good = _images(tmp_path / "d", 1)[0]
    fifo = make_fifo(tmp_path / "d" / "x.mp4")
    for args in ([str(good), str(fifo)], [str(tmp_path / "d")]):
        done = run_cli(["detect", *args, "--model", str(model_dir), "--no-progress"], timeout=90)
        assert done.returncode == EXIT_SOME_FAILED, done.stderr
        assert len(done.stdout.splitlines()) == 1
        one_line_error(done.stderr)
        assert "not a regular file" in done.stderr


def test_timeout_stops_a_source_that_never_delivers(model_dir: Path, tmp_path: Path) -> None:
    # Through the URL path (allowed explicitly) ffmpeg itself opens the FIFO and waits for
    # a writer that never comes: only --timeout ends it.
    fifo = make_fifo(tmp_path / "stall.mp4")
    done = run_cli(
        ["detect", f"file:{fifo}", "--allow-urls", "--timeout", "3", "--model", str(model_dir), "--no-progress"],
        timeout=90,
    )
    assert done.returncode == EXIT_SOME_FAILED, done.stderr
    one_line_error(done.stderr)
    assert "timed out after 3 s" in done.stderr


def test_help_lists_the_new_options() -> None:
    done = run_python("from deepfakedetect.cli import main; main(['detect', '--help'])")
    for option in ("--timeout", "--overwrite"):
        assert option in done.stdout
    train = run_python("from deepfakedetect.cli import main; main(['train', '--help'])")
    assert "--overwrite" in train.stdout
