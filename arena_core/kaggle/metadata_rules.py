"""Our own metadata rules, for what the kaggle package does not check locally.

Placeholder ids (``user/slug``, ``YOUR_USERNAME/...``), the licence *name* (kaggle only counts
licences; the server rejects unknown names after the upload), kernel source lists, an explicit
``enable_internet: false`` (kaggle pushes a kernel *with* internet when the key is missing), the
accelerator id (``machine_shape``, which kaggle sends unchecked), and, for a kernel that runs on a
bundle, that it attaches a competition and that bundle (kaggle accepts a kernel with neither; the
notebook then finds no test file or no wheel, on Kaggle, after the push).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "KAGGLE_DATASET_LICENSES",
    "MACHINE_SHAPES",
    "bundle_source_problems",
    "hardware_problems",
    "internet_problems",
    "kernel_source_problems",
    "licence_problems",
    "placeholder_problem",
]

# Licence names accepted in dataset-metadata.json, from Kaggle's documentation
# (kaggle-api docs/datasets_metadata.md, "Licenses"). The kaggle package has no local list: it
# only checks that there is exactly one licence with a name, and the server rejects the rest.
KAGGLE_DATASET_LICENSES = (
    "CC0-1.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-SA-4.0",
    "GPL-2.0",
    "ODbL-1.0",
    "DbCL-1.0",
    "copyright-authors",
    "other",
    "unknown",
    "CC-BY-4.0",
    "CC-BY-NC-4.0",
    "PDDL",
    "CC-BY-3.0",
    "CC-BY-3.0-IGO",
    "US-Government-Works",
    "CC-BY-NC-SA-3.0-IGO",
    "CDLA-Permissive-1.0",
    "CDLA-Sharing-1.0",
    "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0",
    "ODC-BY-1.0",
    "LGPL-3.0",
    "AGPL-3.0",
    "FDL-1.3",
    "EU-ODP-Legal-Notice",
    "apache-2.0",
    "GPL-3.0",
)

# Accelerator ids ``machine_shape`` takes (kaggle-cli docs/kernels.md, "Accelerators available as of
# Feb 2026"); the kaggle package sends the value unchecked ("the allowed names are in an enum that
# is not currently included in kagglesdk"), so a typo would only surface on Kaggle. Some are
# limited to particular competitions or to Kaggle staff.
MACHINE_SHAPES = (
    "NvidiaTeslaT4",
    "NvidiaTeslaT4Highmem",
    "NvidiaTeslaP100",
    "NvidiaTeslaA100",
    "NvidiaL4",
    "NvidiaL4X1",
    "NvidiaH100",
    "NvidiaRtxPro6000",
    "TpuV38",
    "Tpu1VmV38",
    "TpuV5E8",
    "TpuV6E8",
)
_PLACEHOLDER_MARKERS = (
    "your_",
    "your-",
    "insert_",
    "insert-",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "todo",
    "<",
    ">",
    "{",
    "}",
)
_PLACEHOLDER_OWNERS = {
    "user",
    "username",
    "user-name",
    "user_name",
    "owner",
    "yourname",
    "yourusername",
    "me",
    "example",
    "someone",
    "xxx",
    "kaggle-username",
    "kaggle_username",
}
_PLACEHOLDER_SLUGS = {
    "slug",
    "dataset-slug",
    "dataset_slug",
    "kernel-slug",
    "kernel_slug",
    "my-dataset",
    "my-kernel",
    "example",
    "xxx",
}


def placeholder_problem(ref: Any, what: str, hint: str) -> str | None:
    """A message when ``owner/slug`` still holds a template value; None for real ids and malformed ones."""
    if not isinstance(ref, str) or "/" not in ref:
        return None  # the kaggle format check reports these
    owner, slug = ref.split("/")[:2]
    low_owner, low_slug = owner.lower(), slug.lower()
    if (
        low_owner in _PLACEHOLDER_OWNERS
        or low_slug in _PLACEHOLDER_SLUGS
        or any(m in low_owner or m in low_slug for m in _PLACEHOLDER_MARKERS)
    ):
        return f"{what} {ref!r} is a placeholder: use your Kaggle username and a real slug ({hint})"
    return None


def licence_problems(meta: dict) -> list[str]:
    """Each dataset licence name must be one Kaggle documents (:data:`KAGGLE_DATASET_LICENSES`)."""
    problems = []
    licenses = meta.get("licenses")
    if isinstance(licenses, list):
        for lic in licenses:
            name = lic.get("name") if isinstance(lic, dict) else None
            if name is not None and name not in KAGGLE_DATASET_LICENSES:
                near = [x for x in KAGGLE_DATASET_LICENSES if x.lower() == str(name).lower()]
                hint = (
                    f"did you mean {near[0]!r}?"
                    if near
                    else "Kaggle accepts: " + ", ".join(KAGGLE_DATASET_LICENSES)
                )
                problems.append(f"licence {name!r} is not a Kaggle dataset licence name; {hint}")
    elif licenses is not None:
        problems.append('licenses must be a list like [{"name": "apache-2.0"}]')
    return problems


def kernel_source_problems(meta: dict) -> list[str]:
    """Source lists must be lists of strings, and no dataset source may be a placeholder."""
    problems = []
    for key in ("dataset_sources", "competition_sources", "kernel_sources", "model_sources"):
        value = meta.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{key} must be a list of strings, not {value!r}")
    for src in meta.get("dataset_sources", []) if isinstance(meta.get("dataset_sources"), list) else []:
        p = placeholder_problem(src, "dataset source", "the bundle's --dataset-id")
        if p:
            problems.append(p)
    return problems


def internet_problems(meta: dict, api: Any) -> list[str]:
    """``enable_internet`` must be present and false, its value read by kaggle's own ``api.get_bool``."""
    if "enable_internet" not in meta:
        return [
            "enable_internet is missing: the kaggle package then pushes the kernel WITH internet; "
            'set "enable_internet": false explicitly (the competition requires it off)'
        ]
    try:
        on = api.get_bool(meta, "enable_internet", True)
    except (ValueError, TypeError) as exc:
        return [f"kaggle: {exc}"]
    if on:
        return ['enable_internet is true: set "enable_internet": false (competition kernels run offline)']
    return []


def hardware_problems(meta: dict) -> list[str]:
    """What is wrong with a kernel's accelerator fields (the kaggle package does not check them)."""
    shape = meta.get("machine_shape")
    if shape in (None, ""):
        return []
    if shape not in MACHINE_SHAPES:
        near = [m for m in MACHINE_SHAPES if m.lower() == str(shape).lower()]
        return [
            f"machine_shape {shape!r} is not a Kaggle accelerator id; "
            + (f"did you mean {near[0]!r}?" if near else "known: " + ", ".join(MACHINE_SHAPES))
        ]
    if str(shape).startswith("Tpu"):
        return [f"machine_shape {shape!r} is a TPU: arena_core runs on CUDA GPUs (or CPU), not TPUs"]
    gpu = meta.get("enable_gpu", False)
    if gpu is False or str(gpu).lower() == "false":
        return [f"machine_shape {shape!r} asks for a GPU but enable_gpu is false"]
    return []


def bundle_source_problems(meta: dict, dataset_id: str) -> list[str]:
    """What a kernel running on the bundle ``dataset_id`` lacks: a competition, or the bundle itself."""
    problems = []
    competitions = meta.get("competition_sources")
    if not competitions:
        problems.append(
            "competition_sources is empty: the notebook would find no competition data; add the competition's "
            "slug, e.g. wsdm-cup-multilingual-chatbot-arena (build_dataset.py --kernel-dir --competition writes it)"
        )
    sources = meta.get("dataset_sources") if isinstance(meta.get("dataset_sources"), list) else []
    if str(dataset_id).lower() not in {str(s).lower() for s in sources}:
        problems.append(
            f"dataset_sources {sources} does not include the bundle {dataset_id!r}: the notebook would find no "
            "arena_core wheel (nor runs) to install; add it"
        )
    return problems
