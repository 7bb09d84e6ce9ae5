"""python -m engine translate | evaluate | train | export: the command tree of main.py, without the app."""

from engine.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
