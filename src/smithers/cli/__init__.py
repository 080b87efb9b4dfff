"""The ``smithers`` command. Commands are thin: they parse, call ``smithers.ops``, print."""
