#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

# Commands that only read the code need no deployment secrets: they run as development.
CODE_ONLY_COMMANDS = {"makemigrations", "help"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if len(sys.argv) < 2 or sys.argv[1] in CODE_ONLY_COMMANDS:
        os.environ.setdefault("CONVEYOR_ENV", "development")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
