"""Loopback fakes of outside services, speaking their real wire format, shared by tests and benches.

Neither production code nor tests: the wheel leaves it out (``[tool.setuptools.packages.find]``).
"""
