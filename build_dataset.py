#!/usr/bin/env python
"""Build (check, upload) the offline Kaggle dataset that carries arena_core wheels + trained runs.

Thin command over ``arena_core.kaggle.bundle``; every check runs before anything is written or uploaded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
import traceback
from pathlib import Path

from arena_core.cli.exits import EXIT_CODES, exit_code_for, report_error
from arena_core.kaggle.bundle import build_bundle
from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.listing import bundle_parts, size_lines, verify_bundle
from arena_core.kaggle.metadata import (
    COMPETITIONS,
    DEFAULT_MACHINE_SHAPE,
    check_kernel_sources,
    check_metadata,
    write_kernel_metadata,
)
from arena_core.kaggle.upload import upload_bundle
from arena_core.kaggle.wheels import KAGGLE_PLATFORM

ROOT = Path(__file__).resolve().parent

EXAMPLES = f"""
examples:
  # build, then upload (create the first time, new version afterwards)
  python build_dataset.py --out bundle --run runs/gemma2-2b-fold0 --base /models/gemma-2-2b-it \\
      --dataset-id jdoe/arena-core-bundle --title "Arena Core Bundle" --upload

  # an ensemble over two backbones: each run is matched to its base, bases named by identity
  python build_dataset.py --out bundle --run runs/gemma2-9b-fold0 --run runs/gemma2-2b-fold0 \\
      --base models/gemma-2-9b-it --base models/gemma-2-2b-it --dataset-id jdoe/arena-core-bundle

  # only the wheels (for the training notebook's offline install)
  python build_dataset.py --out bundle-wheels --wheels-only --dataset-id jdoe/arena-core-wheels

  # offline build with wheels you already have (no pip download)
  python build_dataset.py --out bundle --run runs/r1 --dataset-id jdoe/arena-core-bundle \\
      --no-download --wheel-dir ~/wheels

  # re-check a built bundle (metadata via the kaggle package, sizes, SHA-256, wheel tags)
  python build_dataset.py --out bundle --check

  # also write the inference kernel's metadata (internet off, GPU T4 x2, this dataset + the competition)
  python build_dataset.py --out bundle --run runs/r1 --dataset-id jdoe/arena-core-bundle \\
      --kernel-dir kaggle_push --competition lmsys

  # the training kernel's metadata (train_notebook.ipynb, the base model attached from Kaggle Models)
  python build_dataset.py --out bundle-wheels --kernel-dir kaggle_train --kernel-kind train \\
      --model-source google/gemma-2/transformers/gemma-2-2b-it/2

The dataset id must be YOUR Kaggle username and a slug (6-50 characters); placeholders such as
user/slug or YOUR_USERNAME/... are refused. The committed kaggle/kernel-metadata.json holds the
placeholder YOUR_KAGGLE_USERNAME on purpose: generate yours with --kernel-dir.
Credentials for --upload: KAGGLE_API_TOKEN, ~/.kaggle/access_token, ~/.kaggle/kaggle.json,
KAGGLE_USERNAME + KAGGLE_KEY, or 'kaggle auth login'. Competitions: {", ".join(f"{k} = {v}" for k, v in COMPETITIONS.items())}.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build_dataset.py",
        description=__doc__.strip().splitlines()[0],
        epilog=EXAMPLES + "\n" + textwrap.fill(EXIT_CODES + " -v adds the traceback.", width=100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
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
        "--allow-newer-arch",
        action="store_true",
        help="bundle a base whose architecture the target image's transformers does not know (e.g. Gemma-3, "
        "transformers >= 4.50, for --python 3.10 = transformers 4.47); refused without it",
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
        "--base",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="base checkpoint the adapter runs need, bundled as models/base/<model_type>-<hash>/; repeat for an "
        "ensemble over several backbones (each run is matched to its base by config.json hash)",
    )
    p.add_argument(
        "--wheels-only",
        action="store_true",
        help="build a bundle without runs (the wheels for the training notebook's offline install)",
    )
    p.add_argument(
        "--max-size-gb",
        type=float,
        metavar="N",
        help="refuse a bundle bigger than N GB (10^9 bytes); the build and --check print each part's size",
    )
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
    p.add_argument(
        "--kernel-kind",
        choices=["inference", "train"],
        default="inference",
        help="which notebook --kernel-dir is for: inference (infer_notebook.ipynb, default) or train",
    )
    p.add_argument(
        "--kernel-slug", help="kernel slug for --kernel-dir (default arena-core-inference / arena-core-train)"
    )
    p.add_argument(
        "--competition",
        default="wsdm",
        metavar="wsdm|lmsys|SLUG",
        help="competition the kernel attaches: wsdm (WSDM Cup, default), lmsys (LMSYS Chatbot Arena) or a slug",
    )
    p.add_argument(
        "--machine-shape",
        default=DEFAULT_MACHINE_SHAPE,
        metavar="ID",
        help=f"Kaggle accelerator for the kernel (default {DEFAULT_MACHINE_SHAPE}, GPU T4 x2; '' to leave "
        "Kaggle's default, which may be a P100 today's image cannot run)",
    )
    p.add_argument("--docker-image", metavar="IMAGE", help="pin the kernel to this Docker image")
    p.add_argument(
        "--docker-pinning",
        choices=["original", "latest"],
        help="docker_image_pinning_type: original (the environment of the first run) or latest",
    )
    p.add_argument(
        "--model-source",
        action="append",
        default=[],
        metavar="OWNER/MODEL/FRAMEWORK/VARIATION/VERSION",
        help="a Kaggle Model to attach to the kernel (repeatable), e.g. google/gemma-2/transformers/gemma-2-2b-it/2",
    )
    p.add_argument(
        "--kernel-source",
        action="append",
        default=[],
        metavar="OWNER/SLUG",
        help="a notebook whose output to attach (repeatable), e.g. an earlier training run to RESUME_FROM",
    )
    p.add_argument(
        "--kernel-metadata",
        type=Path,
        metavar="FILE",
        help="validate an existing kernel-metadata.json: kaggle's checks, a competition source, and the bundle at "
        "--out (its dataset-metadata.json id) among the dataset sources",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.max_size_gb is not None and not args.max_size_gb > 0:
            raise BundleError(f"--max-size-gb must be a positive number of GB, not {args.max_size_gb}")
        if args.run or args.wheels_only:
            if args.run and args.wheels_only:
                raise BundleError("--wheels-only builds a bundle without runs; drop --run or --wheels-only")
            if not args.dataset_id:
                raise BundleError("--dataset-id USER/SLUG is required to build a bundle")
            report = build_bundle(
                args.out,
                args.run,
                python=args.python,
                platform=args.platform,
                requirements=args.requirements or None,
                include_base=args.base or None,
                dataset_id=args.dataset_id,
                title=args.title,
                license_name=args.license,
                max_size_gb=args.max_size_gb,
                download=not args.no_download,
                wheel_dir=args.wheel_dir,
                overwrite=args.overwrite,
                allow_newer_arch=args.allow_newer_arch,
            )
            print(report.summary())
        elif not (args.check or args.upload or args.kernel_dir or args.kernel_metadata):
            raise BundleError(
                "nothing to do: give --run RUN_DIR (or --wheels-only) to build, or --check / --upload for a built bundle"
            )
        if args.check:
            header = verify_bundle(args.out, max_size_gb=args.max_size_gb)
            print(f"check ok: {args.out} ({header['dataset_id']}, CPython {header['python']})")
            print("\n".join(size_lines(bundle_parts(args.out))))
        if args.kernel_metadata:
            result = check_metadata(args.kernel_metadata, "kernel")
            dataset_id = _bundle_dataset_id(args.out, "--kernel-metadata", args.dataset_id)
            check_kernel_sources(args.kernel_metadata, dataset_id)
            for w in result.warnings:
                print(f"warning: {w}")
            print(f"kernel metadata ok: {args.kernel_metadata} (attaches {dataset_id})")
        if args.kernel_dir:
            dataset_id = args.dataset_id or _bundle_dataset_id(args.out, "--kernel-dir")
            owner = dataset_id.split("/")[0]
            train = args.kernel_kind == "train"
            slug = args.kernel_slug or ("arena-core-train" if train else "arena-core-inference")
            args.kernel_dir.mkdir(parents=True, exist_ok=True)
            notebook = ROOT / "kaggle" / ("train_notebook.ipynb" if train else "infer_notebook.ipynb")
            if notebook.is_file():
                shutil.copyfile(notebook, args.kernel_dir / notebook.name)
            path = write_kernel_metadata(
                args.kernel_dir,
                kernel_id=f"{owner}/{slug}",
                title=" ".join(w.capitalize() for w in slug.split("-")),
                code_file=notebook.name,
                dataset_sources=[dataset_id],
                competition_sources=[args.competition],  # wsdm|lmsys|SLUG: write_kernel_metadata resolves it
                model_sources=args.model_source,
                kernel_sources=args.kernel_source,
                machine_shape=args.machine_shape or None,
                docker_image=args.docker_image,
                docker_image_pinning_type=args.docker_pinning,
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
    except OSError as exc:  # read-only --out, a full disk (shutil.Error), a file where a folder goes
        if args.verbose:
            traceback.print_exc()
        print(f"build_dataset.py: error: {_describe_os_error(exc, args.out)}", file=sys.stderr)
        return exit_code_for(exc)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - one line and the rule's exit code
        return report_error("build_dataset.py", exc, args.verbose)
    return 0


def _describe_os_error(exc: BaseException, out: Path) -> str:
    """One line naming the path: shutil.Error carries a list of (src, dst, why); OSError its filename."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        src, dst, why = exc.args[0][0]
        more = len(exc.args[0]) - 1
        return f"{dst}: could not copy {src} ({why})" + (f" and {more} more file(s)" if more else "")
    where = getattr(exc, "filename", None) or out
    return f"{where}: {getattr(exc, 'strerror', None) or exc} (while writing the bundle to {out})"


def _bundle_dataset_id(out: Path, flag: str, fallback: str | None = None) -> str:
    """The id in the built bundle's dataset-metadata.json (else ``fallback``, --dataset-id)."""
    import json

    meta = out / "dataset-metadata.json"
    if meta.is_file():
        try:
            return str(json.loads(meta.read_text(encoding="utf-8"))["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{meta}: no readable 'id' ({exc})") from exc
    if fallback:
        return fallback
    raise BundleError(
        f"{flag} needs the built bundle at --out (its {meta.name} names the dataset) or --dataset-id"
    )


if __name__ == "__main__":
    sys.exit(main())
