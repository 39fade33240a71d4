"""ImageNet-X: human-annotated factors of variation of ImageNet validation images, joined to a local image folder.

ImageNet-X (Idrissi et al. 2023, "ImageNet-X: Understanding Model Mistakes with Factor of Variation
Annotations"; the ``imagenet-x`` package, which carries the annotation files only, no images) labels
~48,000 ImageNet-1k validation images with 16 binary factors (pose, background, pattern, color, smaller,
shape, partial_view, subcategory, texture, larger, darker, object_blocking, person_blocking, style,
brighter, multiple_objects), keyed by file name (``ILSVRC2012_val_00000293.JPEG``). Licence: the package's
metadata says BSD-3, but the LICENSE file it bundles (with the annotations) is **CC BY-NC 4.0**
(non-commercial); results that use these annotations inherit that.

:class:`ImagenetXSource` is the folder source (any layout: flat, or one sub-folder per class) restricted to
the annotated files, with each file's annotations added to its record: the 16 factors (0/1), ``imagenet_class``
(ImageNet-X's class index 0..999), ``metaclass`` (its 17 meta-classes) and, with ``annotations: top``,
``top_factor`` (the one factor marked most salient). Needs ``pip install 'tokenprobe[imagenet-x]'``.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch

from probe.data.sources import IMAGE_EXTENSIONS, FolderSource, SourceError
from probe.data.transforms import DEFAULT_MIN_SIZE

INSTALL_HINT = "pip install 'tokenprobe[imagenet-x]' (or: pip install imagenet-x)"
LICENSE_NOTE = "ImageNet-X annotations: CC BY-NC 4.0 (the LICENSE bundled with the imagenet-x package)"
# ImageNet-X's 16 factors (imagenet_x.FACTORS), listed here so that manifests validate without the package
FACTORS: tuple[str, ...] = ("pose", "background", "pattern", "color", "smaller", "shape", "partial_view",
                            "subcategory", "texture", "larger", "darker", "object_blocking", "person_blocking",
                            "style", "brighter", "multiple_objects")
ANNOTATIONS = ("multi", "top")


class ImagenetXUnavailable(SourceError, ImportError):
    """The optional ``imagenet-x`` package is not installed."""


@lru_cache(maxsize=4)
def annotations(which: str = "multi", filter_prototypes: bool = True) -> pd.DataFrame:
    """ImageNet-X's validation annotations (``imagenet_x.load_annotations``), indexed by file name: the 16
    factors (int 0/1), ``imagenet_class``, ``metaclass`` and (``which="top"``) ``top_factor``."""
    if which not in ANNOTATIONS:
        raise ValueError(f"ImageNet-X annotations must be one of {ANNOTATIONS}, got {which!r}")
    try:
        import imagenet_x
    except ImportError:
        raise ImagenetXUnavailable(f"the imagenet-x source needs the imagenet-x package: {INSTALL_HINT}") from None
    df = imagenet_x.load_annotations(which_factor=which, partition="val", filter_prototypes=filter_prototypes)
    out = df[["file_name", *FACTORS]].copy()
    out[list(FACTORS)] = out[list(FACTORS)].astype(int)
    out["imagenet_class"] = df["class"].astype(int).to_numpy()
    out["metaclass"] = df["metaclass"].astype(str).to_numpy()
    if which == "top":
        out["top_factor"] = out[list(FACTORS)].idxmax(axis=1).where(out[list(FACTORS)].sum(axis=1) > 0, "none")
    return out.set_index("file_name")


def record_fields(which: str = "multi") -> dict[str, str]:
    """Every record field of an :class:`ImagenetXSource` -> its kind."""
    out = dict(FolderSource.fields)
    out.update({f: "categorical" for f in FACTORS})
    out.update(imagenet_class="categorical", metaclass="categorical")
    if which == "top":
        out["top_factor"] = "categorical"
    return out


class ImagenetXSource(FolderSource):
    """Image files under ``root`` whose file name ImageNet-X annotates, with those annotations in each record.

    Files that ImageNet-X does not annotate (about 2,000 of the 50,000, and its prototype images unless
    ``filter_prototypes`` is false) are left out; a folder with none of the annotated names is an error.
    """

    fields: ClassVar[dict[str, str]] = record_fields("multi")

    def __init__(self, root: str | Path, *, annotations_kind: str = "multi", filter_prototypes: bool = True,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, recursive: bool = True,
                 min_size: int = DEFAULT_MIN_SIZE) -> None:
        super().__init__(root, extensions=extensions, recursive=recursive, min_size=min_size)
        table = annotations(annotations_kind, filter_prototypes)
        n_all = len(self.files)
        self.files = [f for f in self.files if Path(f).name in table.index]
        if not self.files:
            raise SourceError(f"image folder {str(self.root)!r}: none of its {n_all} files is named like an "
                              "ImageNet-X annotated validation image (e.g. ILSVRC2012_val_00000293.JPEG)")
        self.n_unannotated = n_all - len(self.files)
        self.fields = record_fields(annotations_kind)
        self._rows = {f: {k: (v.item() if hasattr(v, "item") else v) for k, v in table.loc[Path(f).name].items()}
                      for f in self.files}

    def item(self, i: int, resolution: int) -> tuple[torch.Tensor, str, dict[str, Any]]:
        img, ref, rec = super().item(i, resolution)
        return img, ref, {**rec, **self._rows[self.files[i]]}
