"""hepavol.study.clinical: reading and validating clinical.csv and treatments.csv."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hepavol.errors import TableError
from hepavol.study.clinical import (
    CATEGORIES,
    TREATMENT_KINDS,
    ClinicalTable,
    read_clinical,
    treatment_kind,
    who_2019_grade,
)

HEADER = "patient_id,tumour_type,primary_site,ki67_percent,grade,cga_ug_l,extra_abdominal,primary_resected\n"
GOOD_ROW = "H1,NET,small_intestine,2,G1,120,no,yes\n"
TREATMENTS_HEADER = "patient_id,treatment,start_date,end_date\n"


def _write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _read(tmp_path: Path, clinical: str, treatments: str | None = None) -> ClinicalTable:
    c = _write(tmp_path, "clinical.csv", clinical)
    t = None if treatments is None else _write(tmp_path, "treatments.csv", treatments)
    return read_clinical(c, treatments_path=t)


def test_nurse_file_with_units_semicolons_and_decimal_commas(tmp_path: Path) -> None:
    """What a study nurse exports from Excel in France: BOM, semicolons, decimal commas, units in the headers."""
    clinical = (
        "\ufeffPatient ID;Tumour type;Primary site;Ki-67 (%);Grade;CgA (ng/mL);Extra-abdominal disease;"
        "Primary resected;Age\n"
        "H123456;NET;ileum;2,5;G1;1 200,5;no;yes;61\n"
        "H789012;carcinoid;small bowel;15 %;2;NA;yes;0;70\n"
        "H345678;;;;;;;;\n"
    )
    treatments = (
        "patient_id;treatment;start_date;end_date\n"
        "H123456;Octreotide LAR;2017-11-02;\n"
        "H123456;TACE;2019-03-14;\n"
        "H789012;everolimus;2018-06-01;2018-12-20\n"
        "H789012;Lutathera;2017-01-05;2017-07-05\n"
    )
    with pytest.raises(TableError, match=r"line 2, column 'CgA \(ng/mL\)': value '1 200,5' is not a number.*"):
        _read(tmp_path, clinical, treatments)
    table = _read(tmp_path, clinical.replace("1 200,5", "1200,5"), treatments)
    assert [r.patient_id for r in table] == ["H123456", "H789012", "H345678"]
    a, b, c = table.records
    assert (a.line, a.tumour_type, a.primary_site, a.differentiation) == (2, "NET", "small_intestine", "well")
    assert (a.ki67_percent, a.grade, a.cga_ug_l, a.extra_abdominal, a.primary_resected) == (
        2.5,
        "G1",
        1200.5,  # ng/mL = µg/L
        False,
        True,
    )
    assert [(t.kind, t.category, t.start_date, t.end_date, t.line) for t in a.treatments] == [
        ("somatostatin_analogue", "somatostatin_analogue", dt.date(2017, 11, 2), None, 2),  # drug: ongoing
        ("tace", "invasive_liver", dt.date(2019, 3, 14), dt.date(2019, 3, 14), 3),  # procedure: one day
    ]
    assert (b.tumour_type, b.primary_site, b.ki67_percent, b.grade, b.cga_ug_l) == (
        "NET",
        "small_intestine",
        15.0,
        "G2",
        None,
    )
    assert [t.kind for t in b.treatments] == ["prrt", "everolimus"]  # sorted by start date
    assert (c.tumour_type, c.ki67_percent, c.extra_abdominal, c.treatments) == (None, None, None, ())
    assert all(r.treatments_recorded for r in table)
    assert table.warnings == ("{}: ignored column(s) 'Age'".format(tmp_path / "clinical.csv"),)
    assert table.get("H789012") is b
    assert table.get("nobody") is None


def test_simulator_spellings(tmp_path: Path) -> None:
    """The simulator writes cga_ug_per_l, extra_abdominal_disease and systemic_chemotherapy (writer.CLINICAL_COLUMNS)."""
    table = _read(
        tmp_path,
        "patient_id,cga_ug_per_l,extra_abdominal_disease,somatostatin_analogue,invasive_liver_treatment,"
        "systemic_chemotherapy,differentiation,primary_site\n"
        "SIM-001,91.0,yes,yes,no,no,well,small_intestine\n",
        TREATMENTS_HEADER + "SIM-001,somatostatin_analogue,2015-08-16,\n",
    )
    (r,) = table.records
    assert (r.cga_ug_l, r.extra_abdominal, r.tumour_type, r.differentiation) == (91.0, True, "NET", "well")


@pytest.mark.parametrize(
    ("ki67", "grade", "warning"),
    [
        # WHO 2019 GEP-NET grading by Ki-67: G1 < 3 %, G2 3-20 %, G3 > 20 % (SCIENCE.md §3.4, PMC7763988 Table 1)
        ("2.9", "G1", None),
        ("3", "G2", None),
        ("3", "G1", "contradicts WHO 2019"),
        ("20", "G2", None),
        ("20.1", "G2", "contradicts WHO 2019"),
        ("20.1", "G3", None),
        ("2.9", "G2", "only if the mitotic count gave the higher grade"),
    ],
)
def test_grade_against_ki67_warns(tmp_path: Path, ki67: str, grade: str, warning: str | None) -> None:
    table = _read(tmp_path, f"patient_id,ki67_percent,grade\nH1,{ki67},{grade}\n")
    graded = [w for w in table.warnings if "WHO 2019" in w]
    if warning is None:
        assert graded == []
    else:
        assert len(graded) == 1
        assert warning in graded[0]
        assert "line 2: grade" in graded[0]


def test_who_2019_grade_cut_offs() -> None:
    # WHO 2019: G1 < 3 %, G2 3-20 %, G3 > 20 % (SCIENCE.md §3.4)
    assert [who_2019_grade(k) for k in (0.0, 2.99, 3.0, 20.0, 20.01, 100.0)] == [
        "G1",
        "G1",
        "G2",
        "G2",
        "G3",
        "G3",
    ]


@pytest.mark.parametrize(
    ("header", "row", "match"),
    [
        ("patient_id,ki67_percent", "H1,101", r"line 2, column 'ki67_percent': value '101' is outside 0-100"),
        ("patient_id,ki67_percent", "H1,-1", r"value '-1' is outside 0-100"),
        ("patient_id,ki67_percent", "H1,high", r"value 'high' is not a number; .*leave the cell empty"),
        ("patient_id,ki67_percent", "H1,<2", r"value '<2' is a bound, not a number"),
        ("patient_id,ki67_percent", "H1,inf", r"value 'inf' is not a finite number"),
        ("patient_id,cga_ug_l", "H1,-5", r"column 'cga_ug_l': value '-5' is negative"),
        ("patient_id,cga_ug_l", "H1,150000", r"value '150000' is above 100000 µg/L.*divided by 1000"),
        ("patient_id,cga_ug_l", 'H1,"1,200"', r"value '1,200' is ambiguous: 1200 or 1\.200\?"),
        ("patient_id,cga_ug_l", "H1,1 200", r"value '1 200' is not a number; .*without thousands separators"),
        ("patient_id,cga_nmol_l", "H1,3", r"column 'cga_nmol_l'.*cannot be converted to µg/L with a fixed factor"),
        ("patient_id,CgA (pmol/L)", "H1,3", r"cannot be converted to µg/L with a fixed factor"),
        ("patient_id,CgA (U/L)", "H1,3", r"assay units per litre are not µg/L"),
        ("patient_id,cga_x_uln", "H1,3", r"upper limit of normal depend on the assay"),
        ("patient_id,cga_mg_l", "H1,3", r"multiply the values by 1000 and name the column 'cga_ug_l'"),
        ("patient_id,cga_pg_ml", "H1,3", r"divide the values by 1000 and name the column 'cga_ug_l'"),
        ("patient_id,CgA", "H1,3", r"column 'CgA'.*name the column with its unit: 'cga_ug_l'"),
        ("patient_id,ki67", "H1,3", r"column 'ki67': Ki-67 needs its unit.*'ki67_percent'"),
        ("patient_id,ki67_fraction", "H1,0.03", r"multiply the values by 100 and name the column 'ki67_percent'"),
        ("patient_id,treatments", "H1,TACE", r"treatments go in a separate file"),
        ("patient_id,grade", "H1,G4", r"column 'grade': value 'G4' is not a WHO grade; use G1, G2 or G3"),
        ("patient_id,extra_abdominal", "H1,maybe", r"value 'maybe' is not a yes/no value; use yes/no"),
        ("patient_id,primary_resected", "H1,2", r"value '2' is not a yes/no value"),
        ("patient_id,primary_site", "H1,liverpool", r"value 'liverpool' is not recognised; use small_intestine, "),
        (
            "patient_id,tumour_type",
            "H1,adenoma",
            r"value 'adenoma' is not recognised; use NET, NEC, MiNEN or other",
        ),
        ("patient_id,differentiation", "H1,moderate", r"is not recognised; use well or poorly"),
        (
            "patient_id,tumour_type,differentiation",
            "H1,NET,poorly",
            r"a NET is well and a NEC poorly differentiated",
        ),
        (
            "patient_id,tumour_type,differentiation",
            "H1,NEC,well",
            r"a NET is well and a NEC poorly differentiated",
        ),
        ("patient_id,cga_ug_l,cga_ng_ml", "H1,1,1", r"columns 'cga_ug_l' and 'cga_ng_ml' both give cga_ug_l"),
        ("patient_id,grade", " ,G1", r"line 2, column 'patient_id': empty; every row needs the patient's id"),
        ("patient_id,grade", "H1,G1,extra", r"line 2: 3 cells but the header has 2 columns; put quotes"),
        ("id,grade", "H1,G1", r"line 1: no 'patient_id' column"),
        ("patient_id,grade,", "H1,G1,5", r"column 3 has no name but holds values"),
    ],
)
def test_clinical_value_errors(tmp_path: Path, header: str, row: str, match: str) -> None:
    with pytest.raises(TableError, match=match) as info:
        _read(tmp_path, f"{header}\n{row}\n")
    assert "clinical.csv" in str(info.value)


def test_duplicate_patient_names_both_lines_not_the_id(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"line 4, column 'patient_id': the same patient id as on line 2") as info:
        _read(tmp_path, HEADER + GOOD_ROW + GOOD_ROW.replace("H1", "H2") + GOOD_ROW)
    assert "H1" not in str(info.value)  # hospital ids identify people: messages give line numbers


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"clinical.csv is empty; expected a header line"),
        (b"patient_id,grade\n", r"has a header but no patient rows"),
        ("patient_id,grade\nH\xe9,G1\n".encode("utf-16-le"), r"contains NUL bytes .*save it as 'CSV UTF-8'"),
    ],
)
def test_unreadable_clinical_files(tmp_path: Path, content: bytes, match: str) -> None:
    with pytest.raises(TableError, match=match):
        read_clinical(_write(tmp_path, "clinical.csv", content))


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        # an unmatched quote would otherwise swallow every following row into one cell
        ('H1,"G1\nH2,G2\n', r"line 2: not valid CSV \(unexpected end of data\); check the double quotes"),
        ('H1,"G1\nH2,G2"\nH3,G3\n', r"line 2: a value runs over several lines \(an unmatched double quote\?\)"),
        ('H1,G1\nH2,"G"2"\n', r"line 3: not valid CSV .*check the double quotes"),
    ],
)
def test_bad_quotes(tmp_path: Path, rows: str, match: str) -> None:
    with pytest.raises(TableError, match=match):
        _read(tmp_path, "patient_id,grade\n" + rows)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"clinical file .* is a folder; give the path of the CSV file"):
        read_clinical(tmp_path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"clinical file .*nothere.csv does not exist"):
        read_clinical(tmp_path / "nothere.csv")
    c = _write(tmp_path, "clinical.csv", HEADER + GOOD_ROW)
    with pytest.raises(TableError, match=r"treatments file .*gone.csv does not exist"):
        read_clinical(c, treatments_path=tmp_path / "gone.csv")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (
            "H1,aspirin,2019-01-01,",
            r"line 2, column 'treatment': value 'aspirin' is not a known treatment; use one of "
            r"somatostatin_analogue, liver_surgery, rfa, .*tace.*chemotherapy, everolimus, sunitinib, prrt.*other",
        ),
        ("H1,,2019-01-01,", r"column 'treatment': empty; name the treatment"),
        (
            "H1,everolimus,2019-03-01,2019-02-01",
            r"column 'end_date': value '2019-02-01' is before the start date "
            r"2019-03-01; swap or correct",
        ),
        (
            "H1,tace,14/03/2019,",
            r"value '14/03/2019' is not an ISO date; day/month order is ambiguous; write it as "
            r"YYYY-MM-DD",
        ),
        ("H1,tace,2019-02-30,", r"value '2019-02-30' is not a calendar date"),
        ("H1,tace,March 2019,", r"value 'March 2019' is not an ISO date; write dates as YYYY-MM-DD"),
        ("H1,tace,0219-05-01,", r"year before 1900"),
        ("H1,tace,,", r"column 'start_date': empty; every treatment needs its start date .*first day"),
        (
            "H9,tace,2019-01-01,",
            r"treatments.csv, line 2, column 'patient_id': this patient is not in .*clinical.csv",
        ),
        (",tace,2019-01-01,", r"column 'patient_id': empty"),
    ],
)
def test_treatment_errors(tmp_path: Path, rows: str, match: str) -> None:
    with pytest.raises(TableError, match=match) as info:
        _read(tmp_path, HEADER + GOOD_ROW, TREATMENTS_HEADER + rows + "\n")
    assert "H9" not in str(info.value).replace(str(tmp_path), "")


def test_treatment_file_columns(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"treatments.csv, line 1: missing column\(s\) 'start_date'"):
        _read(tmp_path, HEADER + GOOD_ROW, "patient_id,treatment\nH1,tace\n")
    # end_date may be left out entirely: every treatment is then ongoing (drugs) or one day (procedures)
    table = _read(tmp_path, HEADER + GOOD_ROW, "patient_id,treatment,start_date\nH1,rfa,2019-01-01\n")
    assert table.records[0].treatments[0].end_date == dt.date(2019, 1, 1)


def test_duplicated_treatment_counted_once(tmp_path: Path) -> None:
    table = _read(tmp_path, HEADER + GOOD_ROW, TREATMENTS_HEADER + "H1,tace,2019-01-01,\nH1,TACE,2019-01-01,\n")
    assert len(table.records[0].treatments) == 1
    assert any("line 3: same treatment and dates as line 2; counted once" in w for w in table.warnings)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("somatostatin_analogue", "somatostatin_analogue"),
        ("Octreotide LAR", "somatostatin_analogue"),
        ("lanreotide", "somatostatin_analogue"),
        ("Hepatectomy", "liver_surgery"),
        ("Radiofrequency ablation", "rfa"),
        ("RFA", "rfa"),
        ("chemoembolization", "tace"),
        ("Y-90", "sirt"),
        ("CAPTEM", "chemotherapy"),
        ("5-FU", "chemotherapy"),
        ("Everolimus", "everolimus"),
        ("Sutent", "sunitinib"),
        ("177Lu-DOTATATE", "prrt"),
        ("PRRT", "prrt"),
        ("other", "other"),
        ("other systemic", "other_systemic"),
        ("paracetamol", None),
    ],
)
def test_treatment_names(name: str, kind: str | None) -> None:
    assert treatment_kind(name) == kind


def test_treatment_categories() -> None:
    # the registry record (SCIENCE.md §0): surgery, RFA, TACE are invasive liver treatments; chemotherapy,
    # everolimus, sunitinib systemic; somatostatin analogues allowed; surgery of the primary allowed
    assert {k for k, c in TREATMENT_KINDS.items() if c == "invasive_liver"} >= {
        "liver_surgery",
        "rfa",
        "tace",
        "sirt",
    }
    assert {k for k, c in TREATMENT_KINDS.items() if c == "systemic"} >= {
        "chemotherapy",
        "everolimus",
        "sunitinib",
    }
    assert TREATMENT_KINDS["prrt"] == "systemic"
    assert TREATMENT_KINDS["somatostatin_analogue"] == "somatostatin_analogue"
    assert TREATMENT_KINDS["primary_resection"] == "other"
    assert set(TREATMENT_KINDS.values()) == set(CATEGORIES)


def test_history_columns_without_dates(tmp_path: Path) -> None:
    """Yes/no history columns: enough to know a patient had no such treatment; 'yes' needs the dates."""
    header = "patient_id,invasive_liver_treatment,systemic_therapy\n"
    table = _read(tmp_path, header + "H1,no,no\nH2,yes,no\nH3,no,\n")
    h1, h2, h3 = table.records
    assert (h1.treatments_recorded, h1.undated_treatment_categories) == (True, ())
    assert (h2.treatments_recorded, h2.undated_treatment_categories) == (True, ("invasive_liver",))
    assert h3.treatments_recorded is False  # systemic history unknown
    assert any(
        "line 3: 'invasive_liver_treatment' is yes but no dated invasive_liver treatment" in w
        for w in table.warnings
    )
    # no history at all: not recorded
    assert _read(tmp_path, HEADER + GOOD_ROW).records[0].treatments_recorded is False
    # with the dates, the 'yes' is satisfied
    table = _read(tmp_path, header + "H2,yes,no\n", TREATMENTS_HEADER + "H2,rfa,2019-01-01,\n")
    assert table.records[0].undated_treatment_categories == ()


def test_history_column_contradicting_treatments(tmp_path: Path) -> None:
    with pytest.raises(
        TableError,
        match=r"clinical.csv, line 2, column 'invasive_liver_treatment': 'no', but .*treatments.csv, line 2 records "
        r"tace for the same patient; correct one of the two",
    ):
        _read(
            tmp_path, "patient_id,invasive_liver_treatment\nH1,no\n", TREATMENTS_HEADER + "H1,tace,2019-01-01,\n"
        )


def test_ki67_fractions_warn(tmp_path: Path) -> None:
    table = _read(tmp_path, "patient_id,ki67_percent\nA,0.02\nB,0.05\nC,0.2\n")
    assert any("every Ki-67 value is at most 1" in w for w in table.warnings)
    table = _read(tmp_path, "patient_id,ki67_percent\nA,0.5\nB,2\nC,12\n")
    assert not any("Ki-67" in w for w in table.warnings)


def test_missing_tumour_columns_warn(tmp_path: Path) -> None:
    table = _read(tmp_path, "patient_id,grade\nH1,G1\n")
    assert any("tumour-type criterion cannot be assessed" in w for w in table.warnings)


def test_nec_with_low_grade_warns(tmp_path: Path) -> None:
    table = _read(tmp_path, "patient_id,tumour_type,grade\nH1,NEC,G2\n")
    assert any("a NEC is G3 by definition (WHO 2019)" in w for w in table.warnings)
    assert table.records[0].differentiation == "poorly"


def test_reads_the_simulator_output(tmp_path: Path) -> None:
    """clinical.csv and treatments.csv written by the simulator read back to the simulated values."""
    from hepavol.simulate import DEFAULT_CONFIG, sample_patient
    from hepavol.simulate.treatments import TREATMENT_COLUMNS, patient_treatments
    from hepavol.simulate.writer import CLINICAL_COLUMNS, clinical_row, write_csv

    cfg = DEFAULT_CONFIG.replace(invasive_liver_treatment_probability=0.5, systemic_chemotherapy_probability=0.5)
    patients = [sample_patient(i, seed=4, config=cfg) for i in range(6)]
    write_csv([clinical_row(p.clinical) for p in patients], CLINICAL_COLUMNS, tmp_path / "clinical.csv")
    rows = [r for p in patients for r in patient_treatments(p)]
    write_csv(rows, TREATMENT_COLUMNS, tmp_path / "treatments.csv")
    table = read_clinical(tmp_path / "clinical.csv", treatments_path=tmp_path / "treatments.csv")
    assert len(table) == 6
    for p, r in zip(patients, table):
        c = p.clinical
        assert (r.patient_id, r.ki67_percent, r.grade, r.cga_ug_l) == (
            c.patient_id,
            c.ki67_percent,
            c.grade,
            c.cga_ug_per_l,
        )
        assert (r.extra_abdominal, r.primary_resected) == (c.extra_abdominal_disease, c.primary_resected)
        assert (r.tumour_type, r.primary_site, r.differentiation) == ("NET", "small_intestine", "well")
        categories = {t.category for t in r.treatments}
        assert ("somatostatin_analogue" in categories) == c.somatostatin_analogue
        assert ("invasive_liver" in categories) == c.invasive_liver_treatment
        assert ("systemic" in categories) == c.systemic_chemotherapy
        ssa = [t for t in r.treatments if t.category == "somatostatin_analogue"]
        assert all(t.start_date <= c.baseline_date and t.end_date is None for t in ssa)  # at or before baseline
    assert sum(len(r.treatments) for r in table) == len(rows)


@pytest.mark.parametrize(
    ("tumour_type", "site", "expected"),
    [
        ("Well-differentiated NET", "Ileum", ("NET", "small_intestine", "well")),
        ("carcinoid", "jejunal", ("NET", "small_intestine", "well")),
        ("neuroendocrine carcinoma", "pancreatic", ("NEC", "pancreas", "poorly")),
        ("MiNEN", "CUP", ("MiNEN", "unknown", None)),
        ("NET", "duodenum", ("NET", "duodenum", "well")),
    ],
)
def test_tumour_type_and_site_names(tmp_path: Path, tumour_type: str, site: str, expected: tuple) -> None:
    (r,) = _read(tmp_path, f"patient_id,tumour_type,primary_site\nH1,{tumour_type},{site}\n").records
    assert (r.tumour_type, r.primary_site, r.differentiation) == expected
