"""The benchmark's harness: the plan and command line, the interleaved rounds,
the helper processes and named objects of a run, the C floor, and the table.
bench.py runs it over the modules of subjects/, one per kind of thing timed.
"""
