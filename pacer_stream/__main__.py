"""``python -m pacer_stream worker`` (and every other ``pacer-stream`` command)."""

from pacer_stream.cli import main

if __name__ == "__main__":  # not when a spawned child process re-imports this module
    main()
