"""`python -m processor` = the `opens` command (used to start workers as subprocesses)."""

from processor.cli.main import run

if __name__ == "__main__":
    run()
