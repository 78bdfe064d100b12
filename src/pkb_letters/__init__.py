"""pkb-letters: Patients Know Best invitation letters, from patient list to print-ready PDF."""

__version__ = "0.1.0"
