"""The outside validators of tests/validators.py fail on a wrong SEG or a wrong report (they can fail)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests._dicom_export_helpers import case_volumes
from tests._io_helpers import ORIENTATIONS
from tests.validators import _CHECKED, _key, check_seg, check_sr

from hepavol.io import read_dicom_series, reorient_like, write_dicom_series
from hepavol.io.seg_write import write_dicom_seg
from hepavol.io.sr_write import write_dicom_sr


@pytest.mark.external
def test_validators_reject_a_wrong_voxel_and_a_wrong_tracking_id(tmp_path: Path) -> None:
    ct, labels = case_volumes(ORIENTATIONS["axial"])
    write_dicom_series(ct, tmp_path / "ct")
    image = read_dicom_series(tmp_path / "ct")
    lab = np.asarray(reorient_like(labels, image.geometry).array)
    write_dicom_seg(image, image.with_array(lab), tmp_path / "seg.dcm")
    sr = write_dicom_sr(image, tmp_path / "seg.dcm", tmp_path / "sr.dcm")
    liver = lab == 1
    wrong = liver.copy()
    wrong[tuple(np.argwhere(liver)[0])] = False  # one voxel less than the SEG holds
    with pytest.raises(AssertionError, match=r"segment 1 .* differs"):
        check_seg(
            tmp_path / "seg.dcm", source_geometry=image.geometry, expected={1: wrong, 2: lab == 2, 3: lab == 2}
        )
    renamed = [dict(sr.lesions[0], tracking_id="L9"), *sr.lesions[1:]]
    with pytest.raises(AssertionError):
        check_sr(tmp_path / "sr.dcm", lesions=renamed)
    bigger = [dict(sr.lesions[0], volume_mm3=sr.lesions[0]["volume_mm3"] * 1.001), *sr.lesions[1:]]
    with pytest.raises(AssertionError):
        check_sr(tmp_path / "sr.dcm", lesions=bigger)
    check_sr(tmp_path / "sr.dcm", lesions=sr.lesions)  # the true values pass
    assert _key(tmp_path / "sr.dcm") in _CHECKED
