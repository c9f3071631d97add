"""Tests of hepavol.study.pseudonym: keyed-hash pseudonyms, key files and DICOM header cleaning."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from hepavol.errors import InputError
from hepavol.study.pseudonym import (
    KEY_SIZE_BYTES,
    Pseudonymiser,
    load_key,
    new_key,
    pseudonymise_dataset,
    save_key,
)

FIXED_KEY = bytes(range(32))  # 000102...1f


def _reference(key: bytes, patient_id: str) -> str:
    """The scheme as the docstring states it, with the standard library only: HMAC-SHA256 (RFC 2104) of the
    UTF-8 id, base32 (RFC 4648), lowercase, first 10 characters, 'P-' in front."""
    digest = hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).digest()
    return "P-" + base64.b32encode(digest).decode().lower()[:10]


def test_pseudonym_matches_openssl_and_base32() -> None:
    """Reference from two independent command-line tools (OpenSSL 3.0.19, GNU coreutils base32)::

    printf 'PAT001' | openssl dgst -sha256 -mac HMAC \\
        -macopt hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    -> 6fadb5469374d3c6f63d4eed8d659d654daeb93fd06cf098bd6ea28407993175
    ... -binary | base32 | tr A-Z a-z | cut -c1-10  -> n6w3krutot
    """
    assert Pseudonymiser(FIXED_KEY).pseudonym("PAT001") == "P-n6w3krutot"
    expected_hmac = "6fadb5469374d3c6f63d4eed8d659d654daeb93fd06cf098bd6ea28407993175"
    assert hmac.new(FIXED_KEY, b"PAT001", hashlib.sha256).hexdigest() == expected_hmac


@pytest.mark.parametrize("patient_id", ["PAT001", "12345678", "Müller-0001", "a b", "x" * 64])
def test_pseudonym_matches_standard_library_reference(patient_id: str) -> None:
    p = Pseudonymiser(FIXED_KEY)
    assert p.pseudonym(patient_id) == _reference(FIXED_KEY, patient_id)
    assert p.pseudonym(f"  {patient_id}\t") == _reference(FIXED_KEY, patient_id)  # whitespace stripped
    assert p.pseudonym(f"{patient_id}\x00") == _reference(FIXED_KEY, patient_id)  # DICOM NUL padding


def test_pseudonym_format_stability_and_keys() -> None:
    key = new_key()
    assert len(key) == KEY_SIZE_BYTES
    assert new_key() != key
    a, b = Pseudonymiser(key), Pseudonymiser(key)
    pa = a.pseudonym("ID-42")
    assert pa == b.pseudonym("ID-42")  # stable across instances (= across imports with the same key)
    assert len(pa) == 12
    assert pa.startswith("P-")
    assert set(pa[2:]) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert Pseudonymiser(new_key()).pseudonym("ID-42") != pa  # another key, another pseudonym
    assert a.pseudonym("id-42") != pa  # case kept
    assert Pseudonymiser(key, prefix="NET").pseudonym("ID-42") == "NET-" + pa[2:]
    assert key.hex() not in repr(a)
    assert "hidden" in repr(a)


def test_pseudonyms_of_many_ids_are_distinct() -> None:
    p = Pseudonymiser(FIXED_KEY)
    ids = [f"{i:08d}" for i in range(5000)]
    assert len({p.pseudonym(i) for i in ids}) == len(ids)


@pytest.mark.parametrize("bad", ["", "   ", "\x00"])
def test_empty_id_is_refused(bad: str) -> None:
    with pytest.raises(InputError, match=r"is empty; every patient needs a PatientID"):
        Pseudonymiser(FIXED_KEY).pseudonym(bad)


def test_bad_key_and_prefix() -> None:
    with pytest.raises(InputError, match=r"must be 32 bytes, but it is 16 bytes"):
        Pseudonymiser(bytes(16))
    with pytest.raises(InputError, match=r"must be bytes, but it is str"):
        Pseudonymiser("secret")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"prefix must be ASCII letters and digits.*'P-'"):
        Pseudonymiser(FIXED_KEY, prefix="P-")


def test_save_and_load_key(tmp_path: Path) -> None:
    key = new_key()
    path = save_key(tmp_path / "ws" / "pseudonym.key", key)
    assert path == tmp_path / "ws" / "pseudonym.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(path) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["pseudonym.key"]  # no temporary file left
    with pytest.raises(InputError, match=r"already exists at .*pseudonym.key.*refusing to overwrite"):
        save_key(path, new_key())
    assert load_key(path) == key  # unchanged


def test_load_key_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"'.*missing.key' does not exist.*restore it from your backup"):
        load_key(tmp_path / "missing.key")
    short = tmp_path / "short.key"
    short.write_bytes(b"0123456789")
    with pytest.raises(InputError, match=r"key in '.*short.key' must be 32 bytes, but it is 10 bytes"):
        load_key(short)
    with pytest.raises(InputError, match=r"must be 32 bytes, but it is 3 bytes"):
        save_key(tmp_path / "k", b"abc")
    assert not (tmp_path / "k").exists()


def _identified_dataset() -> Dataset:
    ds = Dataset()
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "12345"
    ds.OtherPatientIDs = "99999"
    ds.PatientBirthDate = "19600101"
    ds.PatientAddress = "1 Main Street"
    ds.PatientSex = "F"
    ds.PatientAge = "064Y"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.InstitutionName = "General Hospital"
    ds.AccessionNumber = "ACC1"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.StudyDate = "20200102"
    ds.SeriesDescription = "ABD PV 2.5"
    ds.add_new(0x00091001, "LO", "VENDORSECRET")
    item = Dataset()
    item.ReferringPhysicianName = "HOUSE^GREGORY"
    item.ReferencedSOPInstanceUID = "1.2.3.4.5.6"
    ds.ReferencedImageSequence = Sequence([item])
    ds.RequestAttributesSequence = Sequence([Dataset()])
    return ds


def test_pseudonymise_dataset_removes_identifying_attributes(tmp_path: Path) -> None:
    ds = _identified_dataset()
    out = pseudonymise_dataset(ds, "P-n6w3krutot")
    assert out is ds
    assert str(ds.PatientName) == "P-n6w3krutot"
    assert ds.PatientID == "P-n6w3krutot"
    for keyword in (
        "OtherPatientIDs",
        "PatientBirthDate",
        "PatientAddress",
        "ReferringPhysicianName",
        "InstitutionName",
        "AccessionNumber",
        "RequestAttributesSequence",
        "PatientSex",
        "PatientAge",
    ):
        assert keyword not in ds, keyword
    assert 0x00091001 not in ds  # private attributes removed
    assert "ReferringPhysicianName" not in ds.ReferencedImageSequence[0]  # nested items cleaned too
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.2.3.4.5.6"
    # kept: UIDs, dates, descriptions
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyDate) == ("1.2.3.4", "1.2.3.4.5", "20200102")
    assert ds.SeriesDescription == "ABD PV 2.5"
    assert all(len(v) <= 64 for v in ds.DeidentificationMethod)  # LO limit
    # nothing of the original identity is left anywhere in the written file
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=False)
    raw = path.read_bytes()
    for secret in (b"DOE", b"12345", b"19600101", b"Main Street", b"HOUSE", b"General Hospital", b"VENDORSECRET"):
        assert secret not in raw, secret


def test_pseudonymise_dataset_options_and_errors() -> None:
    ds = pseudonymise_dataset(_identified_dataset(), "P-x", keep_patient_characteristics=True)
    assert (ds.PatientSex, ds.PatientAge) == ("F", "064Y")
    with pytest.raises(InputError, match=r"pseudonym must be a non-empty string, but it is ''"):
        pseudonymise_dataset(_identified_dataset(), "")
