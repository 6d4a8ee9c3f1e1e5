"""detect_video decodes frames in a bounded background thread while it scores."""

import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfakedetect import Detector
from deepfakedetect import detector as detector_module
from deepfakedetect.io.video import probe_video, read_frames


def _make_video(path: Path, frames: int = 30) -> Path:
    import imageio_ffmpeg

    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size=96x80:rate=10:duration={frames / 10}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


@pytest.fixture(scope="module")
def det() -> Detector:
    torch.manual_seed(0)
    return Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_video(tmp_path_factory.mktemp("overlap") / "clip.mp4")


def _spy_read_frames(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    seen: dict[str, object] = {"threads": set(), "closed": threading.Event()}

    def spying(*args, **kwargs):
        try:
            for item in read_frames(*args, **kwargs):
                seen["threads"].add(threading.current_thread().name)  # type: ignore[union-attr]
                yield item
        finally:
            seen["closed"].set()  # type: ignore[union-attr]

    monkeypatch.setattr(detector_module, "read_frames", spying)
    return seen


def test_frames_decoded_in_a_background_thread_score_as_decoded_in_line(det, video, monkeypatch):
    seen = _spy_read_frames(monkeypatch)
    result = det.detect_video(video, sampler=lambda info: range(0, 30, 2), batch_size=4, progress=False)
    assert seen["threads"] == {"dfd-prefetch"}
    info = probe_video(video)
    frames = list(read_frames(info, list(range(0, 30, 2)), max_size=2 * det.config.preprocess.resize_size))
    expected = det.score_arrays([f for _, f in frames])
    assert [f.index for f in result.frames] == list(range(0, 30, 2))
    np.testing.assert_allclose([f.fake_score for f in result.frames], expected, atol=1e-5)


def test_a_scoring_failure_stops_the_decoding_thread(det, video, monkeypatch):
    seen = _spy_read_frames(monkeypatch)
    calls = 0
    real = det.score_arrays

    def failing(images, **kw):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("scoring broke")
        return real(images, **kw)

    monkeypatch.setattr(det, "score_arrays", failing)
    with pytest.raises(RuntimeError, match="scoring broke"):
        det.detect_video(video, sampler=lambda info: range(30), batch_size=4, progress=False)
    assert seen["closed"].wait(5.0)  # type: ignore[union-attr]
    assert not any(t.name == "dfd-prefetch" and t.is_alive() for t in threading.enumerate())


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_torch_leaves_one_core_to_ffmpeg_while_a_video_is_scored(det, video, monkeypatch, two_threads):
    during: list[int] = []
    real = det.score_arrays

    def counting(images, **kw):
        during.append(torch.get_num_threads())
        return real(images, **kw)

    monkeypatch.setattr(det, "score_arrays", counting)
    det.detect_video(video, sampler=lambda info: range(0, 30, 3), batch_size=4, progress=False)
    assert during and set(during) == {1}
    assert torch.get_num_threads() == 2


def test_the_thread_count_is_restored_when_scoring_fails(det, video, monkeypatch, two_threads):
    def failing(images, **kw):
        raise RuntimeError("scoring broke")

    monkeypatch.setattr(det, "score_arrays", failing)
    with pytest.raises(RuntimeError, match="scoring broke"):
        det.detect_video(video, sampler=lambda info: range(0, 30, 3), batch_size=4, progress=False)
    assert torch.get_num_threads() == 2


def test_nested_blocks_each_restore_what_they_reduced():
    from deepfakedetect.models.precision import one_core_for_the_decoder

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with one_core_for_the_decoder():
            assert torch.get_num_threads() == 2
            with one_core_for_the_decoder():
                assert torch.get_num_threads() == 1
                with one_core_for_the_decoder():  # one thread: nothing to leave
                    assert torch.get_num_threads() == 1
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_a_video_scored_in_another_thread_leaves_both_threads_counts(det, video, two_threads):
    seen: list[int] = []

    def work():
        det.detect_video(video, sampler=lambda info: range(0, 30, 3), batch_size=4, progress=False)
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    assert seen == [2]
    assert torch.get_num_threads() == 2


def test_a_thread_count_set_meanwhile_is_kept(two_threads):
    from deepfakedetect.models.precision import one_core_for_the_decoder

    with one_core_for_the_decoder():
        torch.set_num_threads(3)  # the user's own choice, made while a video was scored
    assert torch.get_num_threads() == 3


def test_the_keyframes_sampler_scores_the_frames_a_full_decode_gives(det, tmp_path):
    import imageio_ffmpeg

    clip = tmp_path / "gop10.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
            "-i", "testsrc=size=96x80:rate=10:duration=6", "-c:v", "libx264", "-g", "10",
            "-keyint_min", "10", "-sc_threshold", "0", "-pix_fmt", "yuv420p", str(clip),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    info = probe_video(clip)
    assert info.keyframes == tuple(range(0, 60, 10))
    result = det.detect_video(clip, sampler="keyframes:num_frames=12,per_keyframe=3", progress=False)
    indices = [f.index for f in result.frames]
    assert indices == [0, 1, 2, 21, 22, 23, 31, 32, 33, 51, 52, 53]
    # Seeking to each run gives exactly the frames that decoding everything gives.
    frames = dict(read_frames(info, indices, max_size=2 * det.config.preprocess.resize_size, strategy="all"))
    expected = det.score_arrays([frames[i] for i in indices])
    np.testing.assert_allclose([f.fake_score for f in result.frames], expected, atol=1e-5)


def test_large_frames_go_through_the_stages_in_smaller_chunks(tmp_path, monkeypatch):
    """A chunk of video frames stays within _VIDEO_CHUNK_BYTES: 4 frames of 1080p, 8 of small video."""
    import imageio_ffmpeg

    big = tmp_path / "big.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
            "-i", "testsrc=size=1920x1080:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", str(big),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    small = _make_video(tmp_path / "small.mp4", frames=10)
    torch.manual_seed(0)
    base = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32", faces=True)
    # No faces found: the chunking is what is tested.
    faces_det = Detector(base.model, base.config, device="cpu", precision="fp32", face_detector=lambda ims: [[] for _ in ims])
    chunks: list[int] = []
    queues: list[int] = []
    real_score = Detector._score_images
    real_prefetch = detector_module.prefetch

    def spy_score(self, images, **kwargs):
        chunks.append(len(images))
        return real_score(self, images, **kwargs)

    def spy_prefetch(items, *, maxsize):
        queues.append(maxsize)
        return real_prefetch(items, maxsize=maxsize)

    monkeypatch.setattr(Detector, "_score_images", spy_score)
    monkeypatch.setattr(detector_module, "prefetch", spy_prefetch)
    for path, expected in ((big, 4), (small, 8)):
        chunks.clear()
        queues.clear()
        faces_det.detect_video(path, sampler=lambda info: range(10), batch_size=32, strict_faces=False, progress=False)
        assert queues == [expected]
        assert max(chunks) == expected and sum(chunks) == 10
