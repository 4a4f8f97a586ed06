"""Presenting scored runs: table files, the printed table, PNG charts, the HTML page, the timm export."""
