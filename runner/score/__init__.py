"""After predictions exist: scoring, tables, charts, comparison, and importing the 2019 files."""
