"""Versioned SQL migrations, applied in order by `module_runtime.db.migrate`.

`NNNN_name.sql`: NNNN is the schema version the file brings the database to. A file that
was released is never edited (its checksum is recorded); a change is a new file.
"""
