"""The ``augpaint-fast`` command line: ``main`` parses the arguments and maps each subcommand to the library.
Nothing in the package imports it."""
