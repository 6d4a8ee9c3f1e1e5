"""Score a large corpus of images and videos with Ray Data, one detector per worker.

    pip install ".[ray]"        # in a clone; or: pip install "ray[data]>=2.9"
    python examples/batch_scan_with_ray.py FOLDER --out results/ [--workers 2] [--model MODEL]

`detect_with_ray` lists the files on the driver and hands them, in batches, to a pool of
Ray actors; each actor loads the detector once and scores its batches with
`detect_many` (decoding threads, unreadable files recorded rather than fatal). Results
are written as JSON-lines files under --out, one row per file: path, status ("ok",
"no_face" or "error"), fake_score, label, error, and the full JSON record.

On one machine this starts a local Ray instance. On a cluster, start Ray on every machine
(`ray start --head` on one, `ray start --address=HEAD:6379` on the others), make the files
and the model reachable at the same paths everywhere (a shared file system, or a Hub repo
id pinned with --revision), and run this script on the head node: it joins the cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON-lines results")
    parser.add_argument("--model", default=None, help="model folder or Hub repo id (default: the built-in model)")
    parser.add_argument("--revision", default=None, help="Hub revision (a commit sha, so every worker loads the same model)")
    parser.add_argument("--workers", type=int, default=2, help="detector actors")
    parser.add_argument("--cpus-per-worker", type=float, default=1)
    parser.add_argument("--gpus-per-worker", type=float, default=0)
    parser.add_argument("--files-per-batch", type=int, default=64)
    args = parser.parse_args(argv)

    import ray

    from deepfakedetect.batch.ray import detect_with_ray

    ray.init()  # joins a running cluster when there is one (RAY_ADDRESS or `ray start`), else starts a local one
    model = str(Path(args.model).resolve()) if args.model and Path(args.model).exists() else args.model
    results = detect_with_ray(
        args.folder.resolve(),
        model=model,
        revision=args.revision,
        concurrency=args.workers,
        num_cpus=args.cpus_per_worker,
        num_gpus=args.gpus_per_worker,
        files_per_batch=args.files_per_batch,
    ).materialize()  # score once; the summary and the files read the same blocks
    results.write_json(str(args.out.resolve()))
    errors = results.filter(lambda row: row["status"] == "error").count()
    print(f"{results.count()} files scored, {errors} could not be read; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
