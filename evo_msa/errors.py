"""One error type for bad user input: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (file, field, CLI value). The message is one line that names
    the file/field and says what was expected."""
