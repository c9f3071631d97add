"""Paths out of messages: what a study stores or prints names files by pseudonym, never by their folders.

PACS exports often name folders and files after the patient (``DUPONT_JEANNE_MRN4471901/CT/SEG.dcm``). An error
raised while a patient is analysed quotes the file it failed on, and that message goes to the console, to
``run_failures`` and to the append-only audit trail. :class:`PathRedactor` rewrites such a message before it is
stored or printed:

* a path of one of the patient's own files (or a file below one of its folders) becomes a label made of the
  pseudonym, the scan date and the role, followed by the part of the path below that file or folder:
  ``'/exports/DUPONT_JEANNE_MRN4471901/CT1/SEG.dcm'`` → ``'<P-eptowb6mf3 2019-03-04 segmentation>'``;
* a path inside the workspace is shown relative to it (``<study>/exports/cohort.csv``);
* any other absolute path is withheld (``<path withheld>``): it may name a patient.

``hepavol study status --paths`` (local, never stored) maps labels back to files for the user who owns the study.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["WITHHELD", "PathRedactor", "scan_labels"]

WITHHELD = "<path withheld>"

# An absolute path in quotes (which may hold spaces), then an unquoted one (up to white space or punctuation).
_QUOTED = re.compile(r"""(?P<q>['"])(?P<path>/[^'"\n]*)(?P=q)""")
_BARE = re.compile(r"""(?<![\w<>./-])/[^\s'"<>,;:()\[\]]+""")


class PathRedactor:
    """Rewrite file paths in text (see the module docstring).

    Parameters
    ----------
    labels : mapping of path → label
        Known files and folders and what to call them instead (``"<P-x 2019-03-04 image>"``).
    workspace : Path, optional
        The study folder; paths inside it are shown relative to it.
    """

    def __init__(self, labels: Mapping[str, str] | Mapping[Path, str], *, workspace: Path | None = None) -> None:
        pairs: dict[str, str] = {}
        for path, label in labels.items():
            for form in _forms(path):
                pairs.setdefault(form, label)
        if workspace is not None:
            for form in _forms(workspace):
                pairs.setdefault(form, "<study>")
        # the longest prefix first, so that a file inside a labelled folder gets the file's label
        self._pairs = sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)

    def text(self, message: str) -> str:
        """``message`` with every absolute path replaced by its label, a workspace-relative path or ``WITHHELD``."""
        out = message
        for prefix, label in self._pairs:
            out = _replace_prefix(out, prefix, label)
        out = _QUOTED.sub(lambda m: f"{m['q']}{WITHHELD}{m['q']}", out)
        return _BARE.sub(WITHHELD, out)


def _forms(path: str | os.PathLike[str]) -> Iterable[str]:
    """The spellings under which a path may appear in a message: as given, absolute, and with links resolved."""
    p = os.fspath(path)
    forms = {p.rstrip("/") or p, os.path.abspath(p)}
    with contextlib.suppress(OSError):
        forms.add(os.path.realpath(p))
    return [f for f in forms if f and f != "/"]


def _replace_prefix(text: str, prefix: str, label: str) -> str:
    """Replace ``prefix`` where it is a whole path or a leading folder of one (not a mere string prefix)."""
    pattern = re.compile(re.escape(prefix) + r"(?=$|[/'\"\s,;:)\]])")
    return pattern.sub(lambda _m: label, text)


def scan_labels(pseudonym: str, scans: Iterable[tuple[str, str | None, str | None]]) -> dict[str, str]:
    """Labels for the files of one patient: ``scans`` gives (date, image path, segmentation path) per scan.

    The deepest folder that holds all of the patient's files is labelled ``<PSEUDONYM>`` when it is not the
    folder of a single file (a patient folder in a PACS export).
    """
    labels: dict[str, str] = {}
    files: list[str] = []
    for day, image, seg in scans:
        for path, role in ((image, "image"), (seg, "segmentation")):
            if path:
                labels[path] = f"<{pseudonym} {day} {role}>"
                files.append(os.path.abspath(path))
    if len(files) > 1:
        common = os.path.commonpath(files)
        if common not in files and Path(common) != Path(common).anchor:
            labels.setdefault(common, f"<{pseudonym}>")
    return labels
