"""The ``srvp`` command line: one module per subcommand, registered in :mod:`srvp.cli.main`."""
