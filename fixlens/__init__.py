"""Tools above the server: the ``fixlens`` command line, the demo, the benchmarks, the in-process local
server and the test doubles they use.

Nothing in the running server imports this package; it may import every other one (``tests/test_layers.py``
checks both).
"""
