"""Benchmarks of charged against its own simulator and a local MariaDB (not run by the tests).

``python -m bench --help`` lists the commands; ``bench/README.md`` has the recorded results.
"""
