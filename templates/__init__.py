"""The letter templates that ship with pkb-letters, as the package `pkb_letters.templates`.

A folder of data, not code: this file makes it a regular package, which both a wheel and the
editable install of the checkout can find (setuptools' editable finder skips mapped folders
without one). `pkb_letters.packaged` gives the paths.
"""
