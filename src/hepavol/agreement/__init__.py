"""Inter- and intra-reader agreement of volumetry and RECIST 1.1 (``hepavol agreement``).

- :mod:`.stats`: ICC(2,1)/ICC(3,1), Bland–Altman, wCV and repeatability coefficient, Cohen's κ (numpy/scipy);
- :mod:`.reads`: one reader's lesion measurements (:class:`ReaderReads`) and the paired-measurement table;
- :mod:`.derive`: what one read implies (per-scan totals, early changes, RECIST and volumetric responses);
- :mod:`.analysis`: the two reads paired (:func:`analyse_agreement`), ``results.json``;
- :mod:`.report`, :mod:`.pipeline`: figures, HTML/PDF report, :func:`run_agreement`.
"""

from hepavol.agreement.analysis import AgreementAnalysis, analyse_agreement, select_reads
from hepavol.agreement.reads import LesionRead, ReaderReads, read_agreement_table, reads_from_rows

__all__ = [
    "AgreementAnalysis",
    "LesionRead",
    "ReaderReads",
    "analyse_agreement",
    "read_agreement_table",
    "reads_from_rows",
    "select_reads",
]
