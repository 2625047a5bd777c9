"""For users' test suites: the pytest plugin, the mock gateway and the seed page reader."""
