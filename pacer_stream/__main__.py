"""``python -m pacer_stream worker`` (and every other ``pacer-stream`` command)."""

from pacer_stream.cli import main

main()
