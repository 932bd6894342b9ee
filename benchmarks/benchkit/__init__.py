"""Helpers shared by the benchmarks: machine facts, FLOP counts, linear fits, tensor files.

Import with ``benchmarks/`` on ``sys.path`` (the benchmark scripts do this themselves). The
helpers that run inside the peers' virtual environments (:mod:`benchkit.tensors`,
:mod:`benchkit.timing`) need only numpy and the standard library.
"""
