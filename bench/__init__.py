"""Benchmarks (issue 7): ``python -m bench [core|matcher|processor|fleet|scaleout|all]``.

Each benchmark runs its subject and a reference in the same run and reports the ratio; see
``bench/__main__.py`` for the options and the table it prints.
"""
