"""Reporting on run folders: tables with confidence intervals, comparability warnings, HTML, the gate."""
