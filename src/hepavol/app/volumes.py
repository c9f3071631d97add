"""Scans held in memory for the review app, on the display grid: image slices, overlay slices, RECIST lines.

A scan is read once (image and active segmentation) when a reader opens it and kept in a small LRU cache, keyed
by the segmentation's content hash so that a new segmentation version is read afresh. The overlay numbers each
lesion as ``measure_scan`` does (value n = lesion ``L<n>``: the largest first) and the liver as
:data:`LIVER_VALUE`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol.app.display import DisplayGrid
from hepavol.errors import InputError
from hepavol.study.reading import LesionRow, ScanFiles
from hepavol.volume import Volume

__all__ = ["CT_PRESETS", "LIVER_VALUE", "LoadedScan", "Overlay", "ScanCache", "lesion_overlay", "load_scan"]

LIVER_VALUE = 65535  # the liver in the overlay (lesions are 1..n)

# CT window presets (centre, width) in HU: Radiopaedia, "Windowing (CT)" (liver W150 L30, abdomen soft tissue
# W400 L50, bone W1800 L400, lung W1500 L-600). The browser offers the same presets.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "liver": (30.0, 150.0),
    "soft tissue": (50.0, 400.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
}


@dataclass(frozen=True, slots=True)
class LoadedScan:
    """A scan on the display grid."""

    files: ScanFiles
    image: Volume
    grid: DisplayGrid
    pixels: NDArray[np.int16]  # display grid (slice, row, column)
    overlay: Overlay  # display grid: 0 background, 1..n lesions L1..Ln, LIVER_VALUE liver
    labels: NDArray[np.integer]  # the active segmentation on the image grid (stored order)
    n_lesions: int
    window: tuple[float, float]  # default (centre, width)
    modality: str | None

    def slice_bytes(self, k: int, plane: str = "axial") -> bytes:
        return np.ascontiguousarray(plane_slice(self.pixels, k, plane, self.files.date), dtype="<i2").tobytes()

    def overlay_bytes(self, k: int, plane: str = "axial") -> bytes:
        return np.ascontiguousarray(self.overlay.plane(k, plane, self.files.date), dtype="<u2").tobytes()

    def _k(self, k: int) -> int:
        plane_slice(self.pixels, k, "axial", self.files.date)
        return k

    def display_to_lps(self, display_index: Any) -> NDArray[np.float64]:
        return self.image.geometry.index_to_lps(self.grid.to_stored_continuous(display_index))

    def lps_to_display(self, point_lps: Any) -> NDArray[np.float64]:
        return self.grid.to_display(self.image.geometry.lps_to_index(np.asarray(point_lps, dtype=float)))

    def lines(self, lesions: list[LesionRow]) -> list[dict[str, Any]]:
        """Each lesion's RECIST long and short axis on the display grid: slice and (row, column) end points."""
        out = []
        geometry = self.image.geometry
        for les in lesions:
            ends: list[list[list[float]] | None] = []
            for pts in (les.long_axis_endpoints_mm, les.short_axis_endpoints_mm):
                if len(pts) != 2:
                    ends.append(None)
                    continue
                idx = [self.grid.to_display(geometry.lps_to_index(np.asarray(p, float))) for p in pts]
                ends.append([[round(float(i[1]), 2), round(float(i[2]), 2)] for i in idx])
            centre = self.grid.to_display(geometry.lps_to_index(np.asarray(les.centroid_mm, float)))
            key = ends[0]
            slice_k = (
                round(
                    float(
                        self.grid.to_display(geometry.lps_to_index(np.asarray(les.long_axis_endpoints_mm[0])))[0]
                    )
                )
                if key is not None
                else round(float(centre[0]))
            )
            out.append(
                {
                    "lesion_id": les.lesion_id,
                    "track_id": les.track_id,
                    "value": les.label_value,
                    "slice": slice_k,
                    "long": ends[0],
                    "short": ends[1],
                    "centre": [round(float(v), 2) for v in centre],
                }
            )
        return out

    def meta(self) -> dict[str, Any]:
        k, rows, cols = self.pixels.shape
        sk, sr, sc = self.grid.spacing_mm
        return {
            "date": self.files.date,
            # per plane: slices, image height and width, and the pixel's height and width in mm
            "planes": {
                "axial": {"n": k, "height": rows, "width": cols, "sy": sr, "sx": sc},
                "coronal": {"n": rows, "height": k, "width": cols, "sy": sk, "sx": sc},
                "sagittal": {"n": cols, "height": k, "width": rows, "sy": sk, "sx": sr},
            },
            "shape": [k, rows, cols],
            "spacing_mm": list(self.grid.spacing_mm),
            "oblique_deg": self.grid.oblique_deg,
            "window": {"centre": self.window[0], "width": self.window[1]},
            "modality": self.modality,
            "segmented": self.files.seg is not None,
            "liver_value": LIVER_VALUE,
            "presets": {name: {"centre": c, "width": w} for name, (c, w) in CT_PRESETS.items()}
            if (self.modality or "").upper() == "CT"
            else {},
        }


PLANES = ("axial", "coronal", "sagittal")


def plane_slice(display: NDArray[Any], k: int, plane: str, date: str) -> NDArray[Any]:
    """Slice ``k`` of a display-grid array in a plane, as the browser draws it.

    Axial: (row, column) as stored on the display grid (anterior up, patient right on the left). Coronal (index =
    display row, anterior to posterior): superior up, patient right on the left. Sagittal (index = display column,
    right to left): superior up, anterior on the left.
    """
    axis = {"axial": 0, "coronal": 1, "sagittal": 2}.get(plane)
    if axis is None:
        raise InputError(f"plane '{plane}' is not one of {', '.join(PLANES)}.")
    n = display.shape[axis]
    if not 0 <= k < n:
        raise InputError(f"{plane} slice {k} is outside the scan of {date} ({plane} slices 0 to {n - 1}).")
    if axis == 0:
        return display[k]
    if axis == 1:
        return display[::-1, k, :]
    return display[::-1, :, k]


@dataclass(frozen=True, slots=True, eq=False)
class Overlay:
    """A label map's overlay, made slice by slice as the browser asks: lesion ``L<n>`` as n, the liver as
    :data:`LIVER_VALUE`, 0 elsewhere (a lesion voxel shows its lesion even where the label map says liver).

    Held as the label map and the lesion numbers, both on the display grid; the numbers are written inside the
    tumours' bounding box only, on a zero-filled array whose other pages are never touched, so building an overlay
    costs one comparison over the label map and the tumour box's connected components, not a volume-sized copy.
    """

    labels: NDArray[np.integer]  # display grid
    lesions: NDArray[np.uint16]  # display grid: 1..n inside lesions
    liver_label: int

    def plane(self, k: int, plane: str, date: str) -> NDArray[np.uint16]:
        """Slice ``k`` of the overlay in a plane (see :func:`plane_slice`)."""
        labels = plane_slice(self.labels, k, plane, date)
        lesions = plane_slice(self.lesions, k, plane, date)
        out = np.where(labels == self.liver_label, np.uint16(LIVER_VALUE), np.uint16(0))
        np.copyto(out, lesions, where=lesions > 0)
        return out

    def array(self) -> NDArray[np.uint16]:
        """The whole overlay on the display grid (for tests)."""
        out = np.where(self.labels == self.liver_label, np.uint16(LIVER_VALUE), np.uint16(0))
        np.copyto(out, self.lesions, where=self.lesions > 0)
        return out


def _tumour_box(tumor: NDArray[np.bool_]) -> tuple[slice, slice, slice] | None:
    """The bounding box of the True voxels (None when there is none), from projections of the mask."""
    ks = np.flatnonzero(tumor.any(axis=(1, 2)))
    if ks.size == 0:
        return None
    sub = tumor[ks[0] : ks[-1] + 1]
    rs = np.flatnonzero(sub.any(axis=(0, 2)))
    cs = np.flatnonzero(sub.any(axis=(0, 1)))
    return (
        slice(int(ks[0]), int(ks[-1]) + 1),
        slice(int(rs[0]), int(rs[-1]) + 1),
        slice(int(cs[0]), int(cs[-1]) + 1),
    )


def lesion_overlay(labels: NDArray[Any], files: ScanFiles, grid: DisplayGrid) -> tuple[Overlay, int]:
    """The overlay of a label map (stored order; lesions numbered as ``measure_scan`` numbers them, the liver as
    ``LIVER_VALUE``) on the display grid, and the number of lesions.

    ``measure_scan`` orders lesions largest first, then by their first voxel in C order; the components are
    labelled inside the tumours' bounding box (every tumour voxel is in it, so the components and the C order of
    their voxels are those of the whole volume), the sizes come from a ``bincount`` and first voxels are looked up
    only for lesions of equal size.
    """
    from hepavol.measurement import connected_components

    numbers = np.zeros(labels.shape, np.uint16)
    overlay = Overlay(labels=grid.view(labels), lesions=grid.view(numbers), liver_label=files.liver_label)
    tumors = files.tumor_labels
    tumor = labels == tumors[0] if len(tumors) == 1 else np.isin(labels, np.asarray(tumors))
    box = _tumour_box(tumor)
    if box is None:
        return overlay, 0
    crop = tumor[box]
    components = connected_components(crop, connectivity=26)
    found = components[crop]  # the tumour voxels' component numbers, in C order
    counts = np.bincount(found)
    values = np.flatnonzero(counts[1:]) + 1
    sizes = counts[values]
    first = np.zeros(values.size, dtype=np.int64)
    _, inverse, n_same = np.unique(sizes, return_inverse=True, return_counts=True)  # over lesions, not voxels
    for i in np.flatnonzero(n_same[inverse] > 1):
        first[i] = int(np.argmax(found == values[i]))  # position in C order among tumour voxels: same order
    order = np.lexsort((first, -sizes))
    lookup = np.zeros(int(values.max()) + 1, np.uint16)
    lookup[values[order]] = np.minimum(np.arange(1, order.size + 1), LIVER_VALUE - 1)
    inside = numbers[box]
    inside[crop] = lookup[found]
    return overlay, int(values.size)


def _default_window(pixels: NDArray[Any], modality: str | None) -> tuple[float, float]:
    """CT: the liver window; otherwise (MR) the 1st to 99th percentile of the body's signal."""
    if (modality or "").upper() == "CT":
        return CT_PRESETS["liver"]
    sample = pixels[:: max(1, pixels.shape[0] // 16), ::4, ::4].astype(np.float64)
    body = sample[sample > np.percentile(sample, 5)]
    lo, hi = (np.percentile(body, [1, 99]) if body.size else (0.0, 1.0)) if sample.size else (0.0, 1.0)
    return float((lo + hi) / 2), float(max(hi - lo, 1.0))


def load_scan(files: ScanFiles) -> LoadedScan:
    """Read a scan and its active segmentation onto the display grid (InputError when the files fail)."""
    from hepavol.io import read_image, read_segmentation
    from hepavol.io.images import image_format

    if files.seg is not None and image_format(files.seg) in ("nifti", "itk"):
        # a label-map file decompresses while the image does (zlib releases the GIL), then goes on its grid
        from concurrent.futures import ThreadPoolExecutor

        from hepavol.io.segmentation import align_labels

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(read_segmentation, files.seg)
            image = read_image(files.image, series_uid=files.series_uid)
            labels = np.asarray(align_labels(pending.result(), image.geometry).array)
    else:
        image = read_image(files.image, series_uid=files.series_uid)
        labels = (
            np.asarray(read_segmentation(files.seg, reference=image.geometry).array)
            if files.seg is not None
            else np.zeros(image.shape, np.uint8)
        )
    grid = DisplayGrid.of(image.geometry)
    pixels = grid.view(image.array)
    if pixels.dtype != np.int16:
        clipped = np.clip(np.asarray(pixels, np.float64), -32768, 32767)
        pixels = np.rint(clipped).astype(np.int16)
    overlay, n_lesions = lesion_overlay(labels, files, grid)
    modality = image.metadata.get("modality")
    return LoadedScan(
        files=files,
        image=image,
        grid=grid,
        pixels=pixels,
        overlay=overlay,
        labels=labels,
        n_lesions=n_lesions,
        window=_default_window(pixels, modality),
        modality=modality,
    )


class ScanCache:
    """The last ``size`` scans opened (thread-safe: one reader of a scan at a time, others wait for it)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], LoadedScan] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[Any, ...], threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, files: ScanFiles) -> bool:
        return (files.study_pk, files.image, files.series_uid, files.seg_hash) in self._items

    def get(self, files: ScanFiles) -> LoadedScan:
        key = (files.study_pk, files.image, files.series_uid, files.seg_hash)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            scan = load_scan(files)
            with self._lock:
                self._items[key] = scan
                self._loading.pop(key, None)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return scan
