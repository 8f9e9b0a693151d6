"""One exception for mistakes a user can fix.

Every layer raises `UserError` for bad input (a missing file, an unsupported format, a
vocabulary too small, ...). The CLI catches it and prints one line -- what was wrong and
what to do -- with a non-zero exit code, never a traceback. Anything else is a bug and is
allowed to show its traceback.
"""


class UserError(Exception):
    """Bad input from the user: printed as one clear line by the CLI."""
