"""The study workspace: a database of patients, scans, lesions and clinical data (``hepavol study``).

Modules: ``dicom_tree`` (walk a PACS export, choose the series to measure), ``pseudonym`` (keyed-hash
pseudonyms), ``clinical`` (read and validate clinical variables and treatments), ``eligibility`` (NCT03689231's
criteria), ``models``/``db`` (SQLAlchemy models, Alembic migrations, SQLite or PostgreSQL), ``workspace``,
``importer``, ``runner`` (batch runs, process pool or Dask), ``export`` (cohort, lesion and time-point tables).
"""
