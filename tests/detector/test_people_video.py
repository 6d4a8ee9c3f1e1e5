"""People in videos, end to end: videos made here from shared FaceForensics++ clips.

- two people side by side (a real clip and a fake one, ``hstack``), and the same swapped:
  two people, the fake side's person scores higher, the video is fake;
- one clip: one person;
- two clips one after the other (a cut), the faces in the same place: two people;
- ``deepfakedetect detect DIR --output``: a line per person, and the people in the records.

Clips from identity groups the default model was never trained on; a few seconds,
downscaled, few sampled frames, so that the module runs in well under a minute.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from deepfakedetect import Detector
from deepfakedetect.cli import main
from deepfakedetect.video.tracks import link_faces

pytestmark = [pytest.mark.shared, pytest.mark.slow]

REAL = "real/youtube__159.mp4"
FAKE = "fake/Deepfakes__097_033.mp4"
OTHER_REAL = "real/youtube__210.mp4"
SAMPLER = "uniform:num_frames=6"


def ffmpeg(*args: str) -> None:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)


def encode(out: Path) -> list[str]:
    return ["-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p", str(out)]


@pytest.fixture(scope="module")
def ffpp(shared_dir: Path) -> Path:
    root = shared_dir / "data" / "videos" / "ffpp_c23"
    for name in (REAL, FAKE, OTHER_REAL):
        if not (root / name).is_file():
            pytest.skip(f"{root / name} is missing")
    return root


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.from_pretrained()


def side_by_side(ffpp: Path, left: str, right: str, out: Path) -> Path:
    scale = "scale=-2:360,setsar=1,fps=25"
    ffmpeg(
        "-t", "2", "-i", str(ffpp / left), "-t", "2", "-i", str(ffpp / right),
        "-filter_complex", f"[0:v]{scale}[a];[1:v]{scale}[b];[a][b]hstack=inputs=2[v]", "-map", "[v]",
        *encode(out),
    )  # fmt: skip
    return out


@pytest.mark.parametrize("fake_side", ["right", "left"])
def test_a_video_with_a_fake_and_a_real_person_is_fake_and_says_who(
    ffpp: Path, detector: Detector, tmp_path: Path, fake_side: str
) -> None:
    left, right = (REAL, FAKE) if fake_side == "right" else (FAKE, REAL)
    video = side_by_side(ffpp, left, right, tmp_path / "two.mp4")
    result = detector.detect_video(video, sampler=SAMPLER, progress=False)
    assert len(result.people) == 2
    width = result.video["width"]
    on_right = {p.id: sum((f.box[0] + f.box[2]) / 2 > width / 2 for f in p.frames) == p.num_frames for p in result.people}
    fake = next(p for p in result.people if on_right[p.id] == (fake_side == "right"))
    real = next(p for p in result.people if p is not fake)
    assert fake.fake_score > real.fake_score
    assert fake.label == "fake" and real.label == "real"
    # The video's score is the most fake person's (the default rule), so the video is fake.
    assert result.fake_score == pytest.approx(fake.fake_score)
    assert result.label == "fake"
    record = result.to_dict()
    assert [p["id"] for p in record["people"]] == [p.id for p in result.people]
    assert all(len(p["frames"]) == p["num_frames"] >= 3 for p in record["people"])
    if fake_side == "left":
        return
    # The rule is configurable, a plain function included.
    by_function = detector.detect_video(
        video, sampler=SAMPLER, progress=False, people=lambda people: min(p.fake_score for p in people)
    )
    assert by_function.fake_score == pytest.approx(real.fake_score)


def test_one_person_gives_one_track(ffpp: Path, detector: Detector, tmp_path: Path) -> None:
    video = tmp_path / "one.mp4"
    ffmpeg("-t", "2", "-i", str(ffpp / FAKE), "-vf", "scale=-2:360,setsar=1", *encode(video))
    result = detector.detect_video(video, sampler=SAMPLER, progress=False)
    assert len(result.people) == 1
    assert result.people[0].num_frames == 6
    assert result.fake_score == pytest.approx(result.people[0].fake_score)


def test_a_cut_between_two_shots_does_not_merge_two_people(ffpp: Path, detector: Detector, tmp_path: Path) -> None:
    video = tmp_path / "cut.mp4"
    fit = "scale=-2:360,pad=640:360:(ow-iw)/2:0,setsar=1,fps=25"  # both faces end up near the centre
    ffmpeg(
        "-t", "2", "-i", str(ffpp / REAL), "-t", "2", "-i", str(ffpp / OTHER_REAL),
        "-filter_complex", f"[0:v]{fit}[a];[1:v]{fit}[b];[a][b]concat=n=2:v=1:a=0[v]", "-map", "[v]",
        *encode(video),
    )  # fmt: skip
    result = detector.detect_video(video, sampler="uniform:num_frames=8", progress=False)
    assert len(result.people) == 2
    first, second = sorted(result.people, key=lambda p: p.start)
    assert first.end < 2.0 < second.start
    # The faces are close enough that their boxes alone would link them: only the cut keeps them apart.
    boxes = [[face.box for face in frame.faces] for frame in result.frames]
    assert len(link_faces(boxes)) == 1


def test_detect_a_folder_prints_and_records_the_people(
    ffpp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    side_by_side(ffpp, REAL, FAKE, folder / "two.mp4")
    out = tmp_path / "results.jsonl"
    assert main(["detect", str(folder), "--sampler", SAMPLER, "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "people=2" in printed and printed.count("\n  person ") == 2
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(record["people"]) == 2
    fake = max(record["people"], key=lambda p: p["fake_score"])
    assert fake["label"] == "fake" and record["fake_score"] == pytest.approx(fake["fake_score"])
    assert all(len(p["frames"]) == p["num_frames"] and len(p["frames"][0]["box"]) == 4 for p in record["people"])
