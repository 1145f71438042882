"""Command-line interface: argument parsing and progress display only; the stages do the work."""
