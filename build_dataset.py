#!/usr/bin/env python
"""Build (check, upload) the offline Kaggle dataset that carries arena_core wheels + trained runs.

Thin command over ``arena_core.kaggle.bundle``; every check runs before anything is written or uploaded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from arena_core.kaggle.bundle import build_bundle
from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.listing import verify_bundle
from arena_core.kaggle.metadata import COMPETITION, check_metadata, write_kernel_metadata
from arena_core.kaggle.upload import upload_bundle
from arena_core.kaggle.wheels import KAGGLE_PLATFORM

ROOT = Path(__file__).resolve().parent

EXAMPLES = f"""
examples:
  # build, then upload (create the first time, new version afterwards)
  python build_dataset.py --out bundle --run runs/gemma2-2b-fold0 --base /models/gemma-2-2b-it \\
      --dataset-id jdoe/arena-core-bundle --title "Arena Core Bundle" --upload

  # offline build with wheels you already have (no pip download)
  python build_dataset.py --out bundle --run runs/r1 --dataset-id jdoe/arena-core-bundle \\
      --no-download --wheel-dir ~/wheels

  # re-check a built bundle (metadata via the kaggle package, sizes, SHA-256, wheel tags)
  python build_dataset.py --out bundle --check

  # also write the inference kernel's metadata (internet off, GPU on, this dataset + the competition)
  python build_dataset.py --out bundle --run runs/r1 --dataset-id jdoe/arena-core-bundle \\
      --kernel-dir kaggle_push

The dataset id must be YOUR Kaggle username and a slug (6-50 characters); placeholders such as
user/slug or YOUR_USERNAME/... are refused. The committed kaggle/kernel-metadata.json holds the
placeholder YOUR_KAGGLE_USERNAME on purpose: generate yours with --kernel-dir.
Credentials for --upload: KAGGLE_API_TOKEN, ~/.kaggle/access_token, ~/.kaggle/kaggle.json,
KAGGLE_USERNAME + KAGGLE_KEY, or 'kaggle auth login'. Competition: {COMPETITION}.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build_dataset.py",
        description=__doc__.strip().splitlines()[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="bundle folder to write (or check)")
    p.add_argument(
        "--run",
        action="append",
        default=[],
        type=Path,
        metavar="RUN_DIR",
        help="run directory (manifest.json, config.yaml, adapter/ or merged/, tokenizer/); repeat for several",
    )
    p.add_argument(
        "--python",
        default="3.10",
        choices=["3.10", "3.11", "3.12"],
        help="Python of the Kaggle image the notebook runs on (default 3.10, the competition-era image)",
    )
    p.add_argument(
        "--platform",
        default=KAGGLE_PLATFORM,
        help=f"newest platform tag the image accepts; older manylinux tags are implied (default {KAGGLE_PLATFORM})",
    )
    p.add_argument(
        "--requirements",
        default=str(ROOT / "requirements-offline.txt"),
        metavar="FILE",
        help="exact pins carried as wheels (default requirements-offline.txt); '' for none",
    )
    p.add_argument(
        "--dataset-id", metavar="USER/SLUG", help="Kaggle dataset id: your username / a 6-50 char slug"
    )
    p.add_argument("--title", help="dataset title, 6-50 characters (default: from the slug)")
    p.add_argument("--license", default="apache-2.0", help="Kaggle licence name (default apache-2.0)")
    p.add_argument(
        "--base", type=Path, metavar="DIR", help="base checkpoint the adapter runs need; bundled too"
    )
    p.add_argument("--max-size-gb", type=float, metavar="N", help="refuse a bundle bigger than N GB")
    p.add_argument(
        "--check",
        action="store_true",
        help="verify the bundle at --out (kaggle metadata validation, files vs BUNDLE.md, SHA-256, wheel tags); "
        "without --run nothing is built",
    )
    p.add_argument(
        "--upload",
        action="store_true",
        help="upload after building/checking (kaggle datasets create/version)",
    )
    p.add_argument("--message", "-m", help="version notes for an existing dataset's new version")
    p.add_argument("--public", action="store_true", help="create the dataset public (default private)")
    p.add_argument(
        "--no-download", action="store_true", help="do not pip download; pinned wheels come from --wheel-dir"
    )
    p.add_argument(
        "--wheel-dir", type=Path, metavar="DIR", help="pre-built wheels to carry (arena_core wheel is reused)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    p.add_argument(
        "--kernel-dir",
        type=Path,
        metavar="DIR",
        help="write DIR/kernel-metadata.json for the inference notebook (id from --dataset-id's owner) and copy "
        "kaggle/infer_notebook.ipynb there, ready for 'kaggle kernels push -p DIR'",
    )
    p.add_argument("--kernel-slug", default="arena-core-inference", help="kernel slug for --kernel-dir")
    p.add_argument(
        "--kernel-metadata", type=Path, metavar="FILE", help="validate an existing kernel-metadata.json"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.run:
            if not args.dataset_id:
                raise BundleError("--dataset-id USER/SLUG is required to build a bundle")
            report = build_bundle(
                args.out,
                args.run,
                python=args.python,
                platform=args.platform,
                requirements=args.requirements or None,
                include_base=args.base,
                dataset_id=args.dataset_id,
                title=args.title,
                license_name=args.license,
                max_size_gb=args.max_size_gb,
                download=not args.no_download,
                wheel_dir=args.wheel_dir,
                overwrite=args.overwrite,
            )
            print(report.summary())
        elif not (args.check or args.upload or args.kernel_dir or args.kernel_metadata):
            raise BundleError(
                "nothing to do: give --run RUN_DIR to build, or --check / --upload for a built bundle"
            )
        if args.check:
            header = verify_bundle(args.out, max_size_gb=args.max_size_gb)
            print(f"check ok: {args.out} ({header['dataset_id']}, CPython {header['python']})")
        if args.kernel_metadata:
            result = check_metadata(args.kernel_metadata, "kernel")
            for w in result.warnings:
                print(f"warning: {w}")
            print(f"kernel metadata ok: {args.kernel_metadata}")
        if args.kernel_dir:
            dataset_id = args.dataset_id or _bundle_dataset_id(args.out)
            owner = dataset_id.split("/")[0]
            args.kernel_dir.mkdir(parents=True, exist_ok=True)
            notebook = ROOT / "kaggle" / "infer_notebook.ipynb"
            if notebook.is_file():
                shutil.copyfile(notebook, args.kernel_dir / notebook.name)
            path = write_kernel_metadata(
                args.kernel_dir,
                kernel_id=f"{owner}/{args.kernel_slug}",
                title=" ".join(w.capitalize() for w in args.kernel_slug.split("-")),
                dataset_sources=[dataset_id],
                validate=notebook.is_file(),
            )
            print(
                f"wrote {path}"
                + ("" if notebook.is_file() else f" (no {notebook} yet: copy the notebook there)")
            )
        if args.upload:
            cmd = upload_bundle(args.out, args.message, public=args.public)
            print("uploaded: " + " ".join(cmd))
    except BundleError as exc:
        print(f"build_dataset.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _bundle_dataset_id(out: Path) -> str:
    import json

    meta = out / "dataset-metadata.json"
    if not meta.is_file():
        raise BundleError("--kernel-dir needs --dataset-id (or a built bundle at --out)")
    return json.loads(meta.read_text(encoding="utf-8"))["id"]


if __name__ == "__main__":
    sys.exit(main())
