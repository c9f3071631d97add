"""A study workspace: a folder with ``study.toml`` (settings), ``pseudonym.key`` and, by default, ``hepavol.db``.

Layout::

    STUDY/study.toml        settings: database URL (password never stored), measurement and follow-up
                            parameters, series-selection rules (edit it; it is read by every command)
    STUDY/pseudonym.key     32 random bytes (mode 0600): the key of the keyed-hash pseudonyms. Keep it; without it
                            a re-import gives the same patients new pseudonyms. Never share it.
    STUDY/hepavol.db        the SQLite database (WAL mode), unless ``[database] url``, ``--db`` or ``HEPAVOL_DB``
                            names a PostgreSQL database

The database URL is chosen in this order: ``--db``, the ``HEPAVOL_DB`` environment variable, ``[database] url``
in ``study.toml``, then ``sqlite:///STUDY/hepavol.db``.
"""

from __future__ import annotations

import getpass
import os
import socket
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepavol._atomic import write_text_atomic
from hepavol._version import __version__
from hepavol.errors import InputError
from hepavol.study.db import Database, database_url_from_env, open_database, redact_url, url_without_password

__all__ = [
    "CONFIG_NAME",
    "DB_NAME",
    "KEY_NAME",
    "STUDY_READ",
    "Settings",
    "Workspace",
    "find_workspace",
    "init_workspace",
]

CONFIG_NAME = "study.toml"
KEY_NAME = "pseudonym.key"
DB_NAME = "hepavol.db"

_CONFIG_TEMPLATE = """\
# hepavol study workspace, created by hepavol {version}.
# Every `hepavol study` command reads this file; edit it to change how the study is measured.

[database]
# SQLite file hepavol.db in this folder unless a URL is given here, with --db or in HEPAVOL_DB.
# PostgreSQL: url = "postgresql://USER@HOST:5432/DBNAME" (give the password in PGPASSWORD or ~/.pgpass).
{database_line}

[measurement]
liver_label = 1            # label of the liver in the segmentations
tumor_labels = [2]         # labels of tumour voxels

[followup]
affine = false             # add an affine stage to the rigid registration on the liver masks
max_distance_mm = 20.0     # largest centroid distance for two non-overlapping lesions to match
mixed_modalities = false   # true: compare volumes across CT and MR (a CT baseline with an MR follow-up); the
                           # study keeps its CT and MR cohorts apart, so other-modality scans are ignored by default

[series_selection]
# Which series of a DICOM study is measured (hepavol study import). Defaults: axial, thinnest slices,
# portal-venous CT, T2-weighted MR. Examples:
# modalities = ["CT", "MR"]
# ct_phase = "portal-venous"
# mr_sequence = "T2"

[readers]
# Whose read `hepavol study export` and `hepavol study agreement` take by default: "study" (the study's own read,
# the segmentations `study run` measures) or a reader's name (a blinded read in the review app, or masks imported
# with `hepavol study import-seg --reader NAME`).
# primary_reader = "study"
"""

_DEFAULTS: dict[str, dict[str, Any]] = {
    "database": {},
    "measurement": {"liver_label": 1, "tumor_labels": [2]},
    "followup": {"affine": False, "max_distance_mm": 20.0, "mixed_modalities": False},
    "series_selection": {},
    "readers": {},
}

#: The name of the study's own read (the active segmentations ``study run`` measures) among the readers.
STUDY_READ = "study"


@dataclass(frozen=True, slots=True)
class Settings:
    """The parameters in ``study.toml`` that change results (they go into every input hash)."""

    liver_label: int
    tumor_labels: tuple[int, ...]
    affine: bool
    max_distance_mm: float
    series_selection: dict[str, Any]
    mixed_modalities: bool = False
    primary_reader: str = STUDY_READ  # [readers] primary_reader: whose read export and agreement take by default

    def measurement_parameters(self) -> dict[str, Any]:
        return {
            "liver_label": self.liver_label,
            "tumor_labels": list(self.tumor_labels),
        }

    def run_parameters(self) -> dict[str, Any]:
        out = {**self.measurement_parameters(), "affine": self.affine, "max_distance_mm": self.max_distance_mm}
        if self.mixed_modalities:  # only when set, so that the analyses of existing studies stay up to date
            out["mixed_modalities"] = True
        return out


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc}). Fix the file (it is the study's settings).") from None
    except OSError as exc:
        raise InputError(f"cannot read the study settings {path}: {exc.strerror}.") from None
    unknown = sorted(set(data) - set(_DEFAULTS))
    if unknown:
        raise InputError(
            f"{path}: unknown section(s) {unknown}; the sections are {sorted(_DEFAULTS)}. Check the spelling."
        )
    merged: dict[str, dict[str, Any]] = {}
    for section, defaults in _DEFAULTS.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            raise InputError(f"{path}: [{section}] must be a table of settings, not {given!r}.")
        if section == "readers":
            extra = sorted(set(given) - {"primary_reader"})
            if extra:
                raise InputError(f"{path}: unknown setting(s) {extra} in [readers]; known: ['primary_reader'].")
        if section in ("measurement", "followup"):
            extra = sorted(set(given) - set(defaults))
            if extra:
                raise InputError(f"{path}: unknown setting(s) {extra} in [{section}]; known: {sorted(defaults)}.")
        merged[section] = {**defaults, **given}
    return merged


def _settings(path: Path, config: dict[str, Any]) -> Settings:
    m, f = config["measurement"], config["followup"]

    def bad(section: str, key: str, value: Any, expected: str) -> InputError:
        return InputError(f"{path}: [{section}] {key} = {value!r} is not valid: expected {expected}.")

    if not isinstance(m["liver_label"], int) or m["liver_label"] < 1:
        raise bad("measurement", "liver_label", m["liver_label"], "a positive integer label")
    labels = m["tumor_labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(v, int) and v > 0 for v in labels):
        raise bad("measurement", "tumor_labels", labels, "a list of positive integer labels, e.g. [2]")
    if not isinstance(f["affine"], bool):
        raise bad("followup", "affine", f["affine"], "true or false")
    if not isinstance(f["mixed_modalities"], bool):
        raise bad("followup", "mixed_modalities", f["mixed_modalities"], "true or false")
    if not isinstance(f["max_distance_mm"], int | float) or f["max_distance_mm"] <= 0:
        raise bad("followup", "max_distance_mm", f["max_distance_mm"], "a positive number of mm")
    primary = config["readers"].get("primary_reader", STUDY_READ)
    if not isinstance(primary, str) or not primary.strip():
        raise bad(
            "readers", "primary_reader", primary, f"a reader's name, or \"{STUDY_READ}\" for the study's own read"
        )
    return Settings(
        liver_label=m["liver_label"],
        tumor_labels=tuple(labels),
        affine=f["affine"],
        max_distance_mm=float(f["max_distance_mm"]),
        series_selection=dict(config["series_selection"]),
        mixed_modalities=f["mixed_modalities"],
        primary_reader=primary.strip(),
    )


class Workspace:
    """An initialised study folder (see the module docstring)."""

    def __init__(self, root: Path, *, db_url: str | None = None) -> None:
        notes = make_private(root)
        self.root = root
        self.config_path = root / CONFIG_NAME
        self.key_path = root / KEY_NAME
        self.config = _read_config(self.config_path)
        self.settings = _settings(self.config_path, self.config)
        configured = self.config["database"].get("url")
        self.db_url = db_url or database_url_from_env() or configured or f"sqlite:///{root / DB_NAME}"
        self._db: Database | None = None
        self.notes = notes  # warnings for the user (e.g. the folder was open to others)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, db={redact_url(self.db_url)!r})"

    @property
    def db(self) -> Database:
        """The study database, opened (and its schema migrated) on first use."""
        if self._db is None:
            self._db = open_database(self.db_url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None

    def pseudonymiser(self) -> Any:
        """The :class:`~hepavol.study.pseudonym.Pseudonymiser` keyed with this study's key."""
        from hepavol.study.pseudonym import Pseudonymiser, load_key

        return Pseudonymiser(load_key(self.key_path))

    @staticmethod
    def actor() -> str:
        """Who is acting, for the audit trail: ``user@host``."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid{os.getuid()}"
        return f"{user}@{socket.gethostname()}"


PRIVATE_FILES = (CONFIG_NAME, KEY_NAME, DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + "-journal")


def make_private(root: Path) -> list[str]:
    """Make the workspace private to its owner: umask 077 for this process (so every file a command creates
    in it, WAL, pulled DICOM and exports included, is 0600 and every folder 0700), the folder 0700 and its own
    files 0600. Returns warnings (the folder was open to others; it could not be made private)."""
    os.umask(0o077)
    notes: list[str] = []
    try:
        mode = stat.S_IMODE(root.stat().st_mode)
    except OSError:
        return notes
    if mode & 0o077:
        try:
            os.chmod(root, 0o700)
            notes.append(
                f"the study folder '{root}' was open to other users (mode {mode:04o}); it is now private "
                "(0700) and its files 0600. Keep studies out of shared folders: the database holds the identity "
                "mapping."
            )
        except OSError as exc:
            notes.append(
                f"the study folder '{root}' is open to other users (mode {mode:04o}) and cannot be made private "
                f"({exc.strerror}); the database holds the identity mapping: move the study to a private folder."
            )
    for name in PRIVATE_FILES:
        path = root / name
        try:
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                os.chmod(path, 0o600)
        except OSError:
            continue
    return notes


def find_workspace(study: str | os.PathLike[str] | None = None, *, db_url: str | None = None) -> Workspace:
    """The workspace ``study`` names, or the one holding the current directory (searched upwards).

    Raises
    ------
    InputError
        No ``study.toml`` there.
    """
    if study is not None:
        root = Path(study).expanduser().resolve()
        if not (root / CONFIG_NAME).is_file():
            raise InputError(
                f"'{study}' is not a hepavol study (no {CONFIG_NAME} in it). Create one with "
                f"'hepavol study init {study}'."
            )
        return Workspace(root, db_url=db_url)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return Workspace(folder, db_url=db_url)
    raise InputError(
        f"no hepavol study here ({here} and its parents have no {CONFIG_NAME}). Run the command inside a study "
        "folder, name one with --study DIR, or create one with 'hepavol study init DIR'."
    )


def init_workspace(root: str | os.PathLike[str], *, db_url: str | None = None) -> Workspace:
    """Create a study workspace in the new or empty folder ``root`` (see the module docstring).

    Raises
    ------
    InputError
        ``root`` is a file or a non-empty folder, or the database cannot be created.
    """
    from hepavol.study.pseudonym import new_key, save_key

    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"cannot create a study in '{root}': it is a file. Give a new or empty folder.")
    if path.is_dir() and any(path.iterdir()):
        what = "already a hepavol study" if (path / CONFIG_NAME).exists() else "not empty"
        raise InputError(f"cannot create a study in '{root}': the folder is {what}. Give a new or empty folder.")
    created = not path.exists()
    os.umask(0o077)
    path.mkdir(parents=True, exist_ok=True)
    root_path = path.resolve()
    notes = make_private(root_path)  # before any file is created in it
    parent_mode = stat.S_IMODE(root_path.parent.stat().st_mode)
    if parent_mode & 0o002 and not parent_mode & 0o1000:
        notes.append(
            f"the folder '{root_path.parent}' that holds the study can be written by every user (mode "
            f"{parent_mode:04o}): another user could replace the study folder. Keep studies in a private folder."
        )
    url = db_url or database_url_from_env()
    try:
        save_key(root_path / KEY_NAME, new_key())
        database_line = f'url = "{url_without_password(url)}"' if url else '# url = ""'
        text = _CONFIG_TEMPLATE.format(version=__version__, database_line=database_line)
        db = open_database(url or f"sqlite:///{root_path / DB_NAME}", create=True)
        db.dispose()
        write_text_atomic(root_path / CONFIG_NAME, text)
    except BaseException:
        for name in (CONFIG_NAME, KEY_NAME, DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
            (root_path / name).unlink(missing_ok=True)
        if created:
            root_path.rmdir()
        raise
    workspace = Workspace(root_path, db_url=url)
    workspace.notes = notes
    from hepavol.study.audit import record

    with workspace.db.transaction() as session:
        record(session, "init", details={"hepavol_version": __version__, "database": workspace.db.display_url})
    return workspace
