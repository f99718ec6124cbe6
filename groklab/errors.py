"""One exception type for anything a user can fix: the CLI prints its message as one line, no traceback."""


class UserError(Exception):
    """Bad input (config, data file, checkpoint, CLI argument). The message names the problem and the fix."""
