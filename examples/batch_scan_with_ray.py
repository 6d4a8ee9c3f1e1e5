"""Score a large corpus of images and videos with Ray Data, one detector per worker.

    pip install "ray[data]"
    python examples/batch_scan_with_ray.py FOLDER --out results/ [--workers 2] [--model MODEL]

Ray Data streams the list of files through a pool of actors; each actor loads the
detector once and scores batches of paths (images together, videos one by one). Results
are written as JSON-lines files under --out, one row per file: path, status ("ok",
"no_face" or "error"), label, fake_score, error.

On one machine this starts a local Ray instance. On a cluster, start Ray on every machine
(`ray start --head` on one, `ray start --address=HEAD:6379` on the others), make the files
and the model reachable at the same paths everywhere (a shared file system), and run this
script on the head node: it joins the running cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

VIDEOS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
IMAGES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


class Scorer:
    """A Ray actor: builds the detector once, then scores batches of file paths."""

    def __init__(self, model: str | None, threads: int) -> None:
        import torch

        from deepfakedetect import Detector

        torch.set_num_threads(threads)  # one actor per CPU share, not every actor on every core
        self.detector = Detector.from_pretrained(model)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from deepfakedetect import DeepfakeDetectError, load_image

        paths = [str(p) for p in batch["path"]]
        rows: dict[str, dict] = {}
        images, arrays = [], []
        for path in paths:
            try:
                if Path(path).suffix.lower() in VIDEOS:
                    rows[path] = self._row(self.detector.detect_video(path, progress=False))
                else:
                    arrays.append(load_image(path))  # decode errors are caught per file here
                    images.append(path)
            except DeepfakeDetectError as e:
                rows[path] = {"status": "error", "label": "", "fake_score": float("nan"), "error": str(e)}
        if arrays:
            for path, result in zip(images, self.detector.detect_image(arrays)):
                rows[path] = self._row(result)
        return {
            "path": np.array(paths),
            "status": np.array([rows[p]["status"] for p in paths]),
            "label": np.array([rows[p]["label"] for p in paths]),
            "fake_score": np.array([rows[p]["fake_score"] for p in paths], dtype=np.float64),
            "error": np.array([rows[p]["error"] for p in paths]),
        }

    @staticmethod
    def _row(result) -> dict:
        score = float("nan") if result.fake_score is None else result.fake_score
        return {"status": result.status, "label": result.label or "", "fake_score": score, "error": ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON-lines results")
    parser.add_argument("--model", default=None, help="model folder or Hub repo id (default: the built-in model)")
    parser.add_argument("--workers", type=int, default=2, help="detector actors")
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="files per batch")
    args = parser.parse_args(argv)

    import ray

    paths = sorted(str(p.resolve()) for p in args.folder.rglob("*") if p.suffix.lower() in IMAGES | VIDEOS)
    if not paths:
        print(f"no images or videos found in {args.folder}", file=sys.stderr)
        return 1
    ray.init()  # joins a running cluster when there is one (RAY_ADDRESS or `ray start`), else starts a local one
    model = str(Path(args.model).resolve()) if args.model and Path(args.model).exists() else args.model
    results = ray.data.from_items([{"path": p} for p in paths]).map_batches(
        Scorer,
        fn_constructor_kwargs={"model": model, "threads": args.cpus_per_worker},
        compute=ray.data.ActorPoolStrategy(size=args.workers),
        num_cpus=args.cpus_per_worker,
        batch_size=args.batch_size,
    )
    results = results.materialize()  # score once; the summary and the files read the same blocks
    results.write_json(str(args.out.resolve()))
    errors = results.filter(lambda row: row["status"] == "error").count()
    print(f"{results.count()} files scored, {errors} could not be read; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
