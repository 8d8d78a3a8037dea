"""authcore's benchmark suite: ratios against baselines measured in the same run.

Run it with ``python -m benchmarks`` (``make bench``); see :mod:`benchmarks.suite`.
"""
