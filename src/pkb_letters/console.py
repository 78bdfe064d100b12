"""The `pkb-letters` command's entry point: `cli`, imported only when the command runs.

Render and check workers are started with "spawn", and a spawned process first runs its
parent's main script again, as a module named ``__mp_main__``. For the installed command
that script is a single import of this module. Were it `cli`, every worker would import
all the command line uses (WeasyPrint, Dask, paramiko, the PKB client): about 67 MiB more
in each check worker, which reads PDFs and needs none of them.
"""

from __future__ import annotations


def main() -> None:
    from pkb_letters.cli import main as command

    command()
